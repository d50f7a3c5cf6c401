import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { ExecResultSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  adminKubeconfig,
  kubectl,
  kubernetesUnavailable,
  removeKubeDeployment,
  SESSIONS_NAMESPACE,
  startKubeSpawner,
} from "../support/kubernetes.js";
import type { SpawnerHandle } from "../support/spawner.js";

const skip = await kubernetesUnavailable();
if (skip) console.warn(`SKIPPING the Kubernetes isolation test: ${skip}`);

/** Whether the cluster enforces NetworkPolicy at all (kind's kindnet ≥ v0.24, Calico, Cilium, deploy/local-cluster). */
async function enforcesNetworkPolicy(): Promise<string | undefined> {
  if (process.env.SBX_TEST_NETWORK_POLICY === "0")
    return "SBX_TEST_NETWORK_POLICY=0: this cluster does not enforce NetworkPolicy";
  return undefined;
}
const noPolicy = skip ?? (await enforcesNetworkPolicy());
if (!skip && noPolicy) console.warn(`SKIPPING the Kubernetes isolation test: ${noPolicy}`);

describe.skipIf(noPolicy !== undefined)(
  "sessions on Kubernetes are isolated by deploy/kubernetes' NetworkPolicies",
  () => {
    let spawner: SpawnerHandle;
    let core: CoreV1Api;

    beforeAll(async () => {
      spawner = await startKubeSpawner();
      const admin = new KubeConfig();
      admin.loadFromFile(adminKubeconfig() ?? "");
      core = admin.makeApiClient(CoreV1Api);
      for (const id of ["alice", "bob"]) {
        expect((await spawner.json("POST", "/v1/sessions", { id, org: "isolation" })).status).toBe(201);
      }
    });
    afterAll(async () => {
      await spawner?.stop();
      if (spawner) await removeKubeDeployment(spawner.deployment);
    });

    const ipOf = async (id: string) =>
      (await core.readNamespacedPod({ name: `sbx-${spawner.deployment}-${id}`, namespace: SESSIONS_NAMESPACE })).status
        ?.podIP ?? "";

    /** curl from inside a session; its exit code (0 connected, 28 timed out, 7 refused). */
    async function curlFrom(id: string, url: string): Promise<number | null> {
      const result = await spawner.json("POST", `/v1/sessions/${id}/execs?wait=true`, {
        argv: ["curl", "-s", "-o", "/dev/null", "-m", "3", url],
      });
      return ExecResultSchema.parse(result.body).exitCode;
    }

    it("lets no session connect to another session's runnerd, while the spawner reaches both", async () => {
      const bob = await ipOf("bob");
      expect(bob).not.toBe("");
      expect(await curlFrom("alice", `http://${bob}:7070/healthz`)).not.toBe(0);
      // The spawner still reaches bob, through the same address.
      const viaSpawner = await spawner.json("POST", "/v1/sessions/bob/execs?wait=true", { argv: ["true"] });
      expect(ExecResultSchema.parse(viaSpawner.body).outcome).toBe("completed");
    });

    it("lets no session reach the cluster's API server through its Service address", async () => {
      const service = (
        await kubectl("get", "service", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}")
      ).trim();
      expect(await curlFrom("alice", `https://${service}:443/version`)).not.toBe(0);
    });

    it("still lets a session open connections of its own, on its own ports", async () => {
      const alice = await ipOf("alice");
      expect(await curlFrom("alice", `http://${alice}:7070/healthz`)).toBe(0);
    });
  },
);
