import { randomBytes } from "node:crypto";
import { afterAll } from "vitest";
import { backendOf, docker, dockerUnavailable, leftovers, removeDeployment } from "../support/docker.js";
import { skipUnlessPlatform } from "../support/skips.js";
import { startSpawner } from "../support/spawner.js";
import { runWarmPoolSuite } from "../support/warm-pool-suite.js";

const skip = skipUnlessPlatform("Docker", await dockerUnavailable(), "warm pools on Docker");

const OTHER_IMAGE = "sbx-runtime:pool-other-docker";

// The suite's second tag of the runtime image goes with it.
afterAll(async () => {
  await docker("rmi", OTHER_IMAGE).catch(() => "");
});

runWarmPoolSuite({
  backend: "docker",
  skip,
  start: (options) => startSpawner(options),
  members: (deployment) => backendOf(deployment).listPool(),
  async otherImage() {
    await docker("tag", "sbx-runtime:latest", OTHER_IMAGE);
    return OTHER_IMAGE;
  },
  async rebuild(image) {
    const name = `sbx-rebuild-${randomBytes(3).toString("hex")}`;
    await docker("create", "--name", name, "sbx-runtime:latest");
    try {
      await docker("commit", "--change", `LABEL sbx.test.rebuilt=${name}`, name, image);
    } finally {
      await docker("rm", "-f", name);
    }
  },
  async findSession(deployment, id) {
    const names = await docker("ps", "-a", "--filter", `name=^/sbx-${deployment}-${id}$`, "--format", "{{.Names}}");
    return names.split("\n").filter((name) => name !== "");
  },
  async leftovers(deployment) {
    const left = await leftovers(deployment);
    return [...left.containers, ...left.volumes];
  },
  cleanup: removeDeployment,
});
