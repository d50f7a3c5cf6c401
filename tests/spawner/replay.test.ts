import { dockerUnavailable, removeDeployment } from "../support/docker.js";
import { runReplaySuite } from "../support/replay-suite.js";
import { startSpawner } from "../support/spawner.js";

const skip = await dockerUnavailable();
if (skip) console.warn(`SKIPPING cross-replica replays on Docker: ${skip}`);

runReplaySuite({ backend: "docker", skip, start: startSpawner, cleanup: removeDeployment, stoppable: {} });
