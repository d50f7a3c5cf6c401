import { dockerUnavailable, leftovers, removeDeployment, sbxTruth } from "../support/docker.js";
import { skipUnlessPlatform } from "../support/skips.js";
import { startSpawner } from "../support/spawner.js";
import { runStopResumeSuite } from "../support/stop-resume-suite.js";

const skip = skipUnlessPlatform("Docker", await dockerUnavailable(), "stop and resume on Docker");

runStopResumeSuite({
  backend: "docker",
  skip,
  start: (env) => startSpawner({ env }),
  // On Docker every workspace is a volume that outlives its container.
  stoppable: {},
  platformTruth: sbxTruth,
  async leftovers(deployment) {
    const left = await leftovers(deployment);
    return [...left.containers, ...left.volumes];
  },
  cleanup: removeDeployment,
});
