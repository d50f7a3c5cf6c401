import type { Logger } from "@sbx/edge";
import type { Config } from "../config.js";
import type { SessionBackend } from "./backend.js";
import { DockerBackend } from "./docker/docker-backend.js";
import { KubernetesBackend } from "./kubernetes/kubernetes-backend.js";

/** The backend's settings worth a line in the start-up log. */
export function backendSummary(config: Config): Record<string, string> {
  const settings = config.backend;
  return settings.kind === "docker"
    ? { backend: settings.kind, access: settings.access }
    : { backend: settings.kind, namespace: settings.namespace };
}

/** The backend SPAWNER_BACKEND names, with its own settings. */
export function createBackend(config: Config, log: Logger): SessionBackend {
  const settings = config.backend;
  switch (settings.kind) {
    case "kubernetes":
      return new KubernetesBackend(
        {
          kubeconfig: settings.kubeconfig,
          namespace: settings.namespace,
          deployment: config.deployment,
          imagePullPolicy: settings.imagePullPolicy,
          runtimeClassName: settings.runtimeClassName,
          terminationGracePeriodSeconds: config.terminationGraceSeconds,
          cpuRequestFraction: settings.cpuRequestFraction,
          unschedulableGraceMs: settings.unschedulableGraceMs,
        },
        log,
      );
    case "docker":
      return new DockerBackend(
        {
          socket: settings.socket,
          deployment: config.deployment,
          network: settings.network,
          access: settings.access,
          pull: settings.pull,
          // A create makes its container right after its volume (the image is pulled before either),
          // so a volume alone for longer than this lost its container to someone else.
          orphanVolumeGraceMs: 10_000,
          stopTimeoutSeconds: config.terminationGraceSeconds,
          // Locks are never-started containers of an image the engine has: the default one.
          lockImage: config.profiles.get("default")?.images[0] ?? "sbx-runtime:latest",
          egressGuard: settings.egressGuard,
          subnet: settings.subnet,
          gatewayPort: config.gateway?.proxyUrl === undefined ? config.gateway?.proxyPort : undefined,
        },
        log,
      );
  }
}
