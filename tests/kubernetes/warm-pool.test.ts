import { afterAll } from "vitest";
import { docker } from "../support/docker.js";
import {
  kubeBackendOf,
  kubectl,
  kubeLeftovers,
  kubernetesUnavailable,
  loadImages,
  removeKubeDeployment,
  SESSIONS_NAMESPACE,
  startKubeSpawner,
} from "../support/kubernetes.js";
import { skipUnlessPlatform } from "../support/skips.js";
import { runWarmPoolSuite } from "../support/warm-pool-suite.js";

const skip = skipUnlessPlatform("a Kubernetes cluster", await kubernetesUnavailable(), "warm pools on Kubernetes");

const OTHER_IMAGE = "sbx-runtime:pool-other-kube";

// The suite's second tag of the runtime image goes with it.
afterAll(async () => {
  await docker("rmi", OTHER_IMAGE).catch(() => "");
});

runWarmPoolSuite({
  backend: "kubernetes",
  skip,
  // A single node of 2 CPUs holds the suite's dozen Pods at a smaller request each.
  start: (options) => startKubeSpawner({ ...options, env: { SPAWNER_DEFAULT_CPUS: "0.5", ...options.env } }),
  members: (deployment) => kubeBackendOf(deployment).listPool(),
  async otherImage() {
    await docker("tag", "sbx-runtime:latest", OTHER_IMAGE);
    await loadImages(OTHER_IMAGE);
    return OTHER_IMAGE;
  },
  async findSession(deployment, id) {
    const selector = `sbx.dev/deployment=${deployment},sbx.dev/session-id=${id}`;
    const names = await kubectl("get", "pods", "-n", SESSIONS_NAMESPACE, "-l", selector, "-o", "name");
    return names.split("\n").filter((name) => name !== "");
  },
  async leftovers(deployment) {
    const left = await kubeLeftovers(deployment);
    return [...left.pods, ...left.pvcs, ...left.leases];
  },
  cleanup: removeKubeDeployment,
});
