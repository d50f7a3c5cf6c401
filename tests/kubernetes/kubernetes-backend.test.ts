import { randomBytes } from "node:crypto";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { runBackendConformance } from "@sbx/spawner/testing";
import { beforeAll, describe, expect, it } from "vitest";
import {
  buildMisbehavingImage,
  cueOutOfMemory,
  docker,
  dockerUnavailable,
  MISSING_IMAGE,
  RUNTIME_IMAGE,
} from "../support/docker.js";
import {
  adminKubeconfig,
  applyRbac,
  kubeBackendOf,
  kubernetesUnavailable,
  loadImages,
  removeKubeDeployment,
  SESSIONS_NAMESPACE,
  STORAGE_CLASS,
  spawnerKubeconfig,
} from "../support/kubernetes.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";

const skip = skipUnlessPlatform(
  "a Kubernetes cluster and Docker",
  (await kubernetesUnavailable()) ?? (await dockerUnavailable()),
  "the Kubernetes backend conformance suite",
);
if (skip) {
  describe("backend conformance: kubernetes", skippedBecause(skip), () => {
    it("runs on a real engine", () => {});
  });
} else {
  /** Kills runnerd through its own API: its init exits, and the Pod's container ends as after a crash. */
  const killRunnerd = async (s: { endpoint: { host: string; port: number }; token: string }) => {
    await fetch(`http://${s.endpoint.host}:${s.endpoint.port}/v1/execs?wait=true`, {
      method: "POST",
      headers: { authorization: `Bearer ${s.token}`, "content-type": "application/json" },
      body: JSON.stringify({ argv: ["sh", "-c", "kill -KILL $PPID"] }),
      signal: AbortSignal.timeout(5000),
    }).catch(() => undefined);
  };

  runBackendConformance("kubernetes (as the spawner's ServiceAccount)", async () => {
    await applyRbac();
    const deployment = `conf-${randomBytes(3).toString("hex")}`;
    const [quits, silent, oom] = await Promise.all([
      buildMisbehavingImage("quitting"),
      buildMisbehavingImage("silent"),
      buildMisbehavingImage("oom"),
    ]);
    await loadImages(RUNTIME_IMAGE, quits, silent, oom);
    // The backend acts with exactly the identity deploy/kubernetes gives the spawner.
    const backend = kubeBackendOf(deployment, await spawnerKubeconfig());
    await backend.init();
    const admin = new KubeConfig();
    admin.loadFromFile(adminKubeconfig() ?? "");
    const core = admin.makeApiClient(CoreV1Api);
    return {
      backend,
      images: { runs: RUNTIME_IMAGE, missing: MISSING_IMAGE, quits, silent, oom },
      stoppableWorkspace: { persistent: true, sizeMb: 256, storageClass: STORAGE_CLASS },
      createTimeoutMs: 60_000,
      kill: killRunnerd,
      oomKill: cueOutOfMemory,
      removeOutOfBand: async (s) => {
        await core.deleteNamespacedPod({ name: backend.podName(s.id), namespace: SESSIONS_NAMESPACE });
      },
      teardown: async () => {
        await removeKubeDeployment(deployment);
        await docker("rmi", "-f", quits, silent, oom).catch(() => "");
      },
    };
  });

  describe("the spawner's ServiceAccount", () => {
    let core: CoreV1Api;
    beforeAll(async () => {
      await applyRbac();
      const config = new KubeConfig();
      config.loadFromFile(await spawnerKubeconfig());
      core = config.makeApiClient(CoreV1Api);
    });

    const refused = async (op: () => Promise<unknown>) => {
      const error = await op().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: 403 });
    };

    it("may not read Secrets, exec into Pods, or touch anything outside the sessions' namespace", async () => {
      await refused(() => core.listNamespacedSecret({ namespace: SESSIONS_NAMESPACE }));
      await refused(() => core.listNamespacedPod({ namespace: "kube-system" }));
      await refused(() => core.listNamespacedPod({ namespace: "default" }));
      await refused(() => core.listNode());
      // pods/exec is a subresource the Role does not grant: the API server refuses the upgrade.
      await refused(() =>
        core.connectPostNamespacedPodExec({ name: "any", namespace: SESSIONS_NAMESPACE, command: "true" }),
      );
    });
  });
}
