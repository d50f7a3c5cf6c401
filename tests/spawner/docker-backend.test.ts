import { randomBytes } from "node:crypto";
import { runBackendConformance } from "@sbx/spawner/testing";
import { describe, it } from "vitest";
import {
  backendOf,
  buildMisbehavingImage,
  cueOutOfMemory,
  docker,
  dockerUnavailable,
  MISSING_IMAGE,
  RUNTIME_IMAGE,
  removeDeployment,
} from "../support/docker.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";

const skip = skipUnlessPlatform("Docker", await dockerUnavailable(), "the Docker backend conformance suite");
if (skip) {
  describe("backend conformance: docker", skippedBecause(skip), () => {
    it("runs on a real engine", () => {});
  });
} else {
  runBackendConformance("docker", async () => {
    const deployment = `conf-${randomBytes(3).toString("hex")}`;
    const backend = backendOf(deployment);
    await backend.init();
    const [quits, silent, oom] = await Promise.all([
      buildMisbehavingImage("quitting"),
      buildMisbehavingImage("silent"),
      buildMisbehavingImage("oom"),
    ]);
    return {
      backend,
      images: { runs: RUNTIME_IMAGE, missing: MISSING_IMAGE, quits, silent, oom },
      createTimeoutMs: 30_000,
      kill: async (s) => {
        await docker("kill", backend.containerName(s.id));
      },
      oomKill: cueOutOfMemory,
      removeOutOfBand: async (s) => {
        await docker("rm", "-f", backend.containerName(s.id));
      },
      teardown: async () => {
        await removeDeployment(deployment);
        await docker("rmi", "-f", quits, silent, oom).catch(() => "");
      },
    };
  });
}
