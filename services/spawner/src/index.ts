/**
 * The spawner as a library, for the project's own suites and benchmarks: its backends and the
 * runtime contract they share. The service itself is `main.ts`, bundled into dist/spawner.mjs.
 */
export type {
  BackendSession,
  BackendSessionSpec,
  Endpoint,
  OwnedObject,
  PoolMember,
  SessionBackend,
} from "./backends/backend.js";
export { DockerBackend, type DockerBackendOptions } from "./backends/docker/docker-backend.js";
export { KubernetesBackend, type KubernetesBackendOptions } from "./backends/kubernetes/kubernetes-backend.js";
export { memoryBudget, RUNNERD_PORT, runnerdEnvironment, WORKSPACE_PATH } from "./backends/runtime-contract.js";
export { runnerdToken, runnerdTokenSha256 } from "./runnerd/runnerd-token.js";
