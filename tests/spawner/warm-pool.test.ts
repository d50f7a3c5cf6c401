import { backendOf, docker, dockerUnavailable, leftovers, removeDeployment } from "../support/docker.js";
import { startSpawner } from "../support/spawner.js";
import { runWarmPoolSuite } from "../support/warm-pool-suite.js";

const skip = await dockerUnavailable();
if (skip) console.warn(`SKIPPING warm pools on Docker: ${skip}`);

const OTHER_IMAGE = "sbx-runtime:pool-other";

runWarmPoolSuite({
  backend: "docker",
  skip,
  start: (options) => startSpawner(options),
  members: (deployment) => backendOf(deployment).listPool(),
  async otherImage() {
    await docker("tag", "sbx-runtime:latest", OTHER_IMAGE);
    return OTHER_IMAGE;
  },
  async leftovers(deployment) {
    const left = await leftovers(deployment);
    return [...left.containers, ...left.volumes];
  },
  cleanup: removeDeployment,
});
