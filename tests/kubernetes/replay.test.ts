import { kubernetesUnavailable, removeKubeDeployment, STORAGE_CLASS, startKubeSpawner } from "../support/kubernetes.js";
import { runReplaySuite } from "../support/replay-suite.js";
import { skipUnlessPlatform } from "../support/skips.js";

const skip = skipUnlessPlatform(
  "a Kubernetes cluster",
  await kubernetesUnavailable(),
  "cross-replica replays on Kubernetes",
);

const profiles = JSON.stringify({
  durable: {
    images: ["sbx-runtime:latest"],
    workspace: { persistent: true, sizeMb: 256, storageClass: STORAGE_CLASS },
  },
});

runReplaySuite({
  backend: "kubernetes",
  skip,
  start: (options) => startKubeSpawner({ ...options, env: { SPAWNER_PROFILES: profiles } }),
  cleanup: removeKubeDeployment,
  // A stopped session keeps its workspace on a PersistentVolumeClaim.
  stoppable: { profile: "durable" },
});
