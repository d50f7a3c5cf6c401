import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { expect } from "vitest";
import {
  adminKubeconfig,
  kubeLeftovers,
  kubernetesUnavailable,
  removeKubeDeployment,
  SESSIONS_NAMESPACE,
  startKubeSpawner,
} from "../support/kubernetes.js";
import { runLifecycleSuite } from "../support/lifecycle-suite.js";
import { skipUnlessPlatform } from "../support/skips.js";

const skip = skipUnlessPlatform(
  "a Kubernetes cluster",
  await kubernetesUnavailable(),
  "spawner lifecycle tests on Kubernetes",
);

runLifecycleSuite({
  backend: "kubernetes",
  skip,
  start: () => startKubeSpawner(),
  async inspectLockdown(spawner, id) {
    const admin = new KubeConfig();
    admin.loadFromFile(adminKubeconfig() ?? "");
    const pod = await admin
      .makeApiClient(CoreV1Api)
      .readNamespacedPod({ name: `sbx-${spawner.deployment}-${id}`, namespace: SESSIONS_NAMESPACE });
    const spec = pod.spec;
    const container = spec?.containers[0];
    expect(spec?.automountServiceAccountToken).toBe(false);
    expect(spec?.enableServiceLinks).toBe(false);
    expect(spec?.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      fsGroup: 10001,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(container?.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    expect(container?.resources).toMatchObject({
      requests: { cpu: "125m", memory: "256Mi" },
      limits: { cpu: "500m", memory: "256Mi" },
    });
    // No service account token is mounted, and nothing but the workspace and scratch is.
    expect(container?.volumeMounts?.map((m) => m.mountPath).sort()).toEqual(["/home/sandbox", "/tmp", "/workspace"]);
    // runnerd is reached at the Pod's own IP: nothing of the node's is shared, no port is bound on it.
    expect([spec?.hostNetwork, spec?.hostPID, spec?.hostIPC].map(Boolean)).toEqual([false, false, false]);
    expect(spec?.containers.flatMap((c) => (c.ports ?? []).filter((p) => p.hostPort !== undefined))).toEqual([]);
    const podIp = pod.status?.podIP ?? "";
    expect(podIp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const health = await fetch(`http://${podIp}:7070/healthz`, { signal: AbortSignal.timeout(5000) });
    expect(await health.json()).toEqual({ status: "ok" });
    expect(pod.metadata?.labels).toMatchObject({ "sbx.dev/session-id": id, "sbx.dev/org": "acme" });
    expect(pod.metadata?.annotations?.["sbx.dev/owner"]).toBe("dev@acme.test");
    return JSON.stringify(pod);
  },
  async leftovers(deployment) {
    const left = await kubeLeftovers(deployment);
    return [...left.pods, ...left.pvcs];
  },
  cleanup: removeKubeDeployment,
});
