import { dockerUnavailable, removeDeployment } from "../support/docker.js";
import { runReplaySuite } from "../support/replay-suite.js";
import { skipUnlessPlatform } from "../support/skips.js";
import { startSpawner } from "../support/spawner.js";

const skip = skipUnlessPlatform("Docker", await dockerUnavailable(), "cross-replica replays on Docker");

runReplaySuite({ backend: "docker", skip, start: startSpawner, cleanup: removeDeployment, stoppable: {} });
