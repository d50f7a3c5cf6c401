import {
  kubeLeftovers,
  kubernetesUnavailable,
  kubeSbxTruth,
  removeKubeDeployment,
  STORAGE_CLASS,
  startKubeSpawner,
} from "../support/kubernetes.js";
import { skipUnlessPlatform } from "../support/skips.js";
import { runStopResumeSuite } from "../support/stop-resume-suite.js";

const skip = skipUnlessPlatform("a Kubernetes cluster", await kubernetesUnavailable(), "stop and resume on Kubernetes");

runStopResumeSuite({
  backend: "kubernetes",
  skip,
  start: (env) =>
    startKubeSpawner({
      env: {
        ...env,
        SPAWNER_PROFILES: JSON.stringify({
          durable: {
            images: ["sbx-runtime:latest"],
            workspace: { persistent: true, sizeMb: 256, storageClass: STORAGE_CLASS },
          },
        }),
      },
    }),
  // A stopped session keeps its workspace on a PersistentVolumeClaim; the Pod goes.
  stoppable: { profile: "durable" },
  platformTruth: kubeSbxTruth,
  async leftovers(deployment) {
    const left = await kubeLeftovers(deployment);
    return [...left.pods, ...left.pvcs];
  },
  cleanup: removeKubeDeployment,
});
