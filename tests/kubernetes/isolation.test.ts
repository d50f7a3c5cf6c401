import { createServer, type Server } from "node:net";
import { networkInterfaces } from "node:os";
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
import { networkPolicyUnenforced } from "../support/network-policy-probe.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";
import type { SpawnerHandle } from "../support/spawner.js";
import { BLOCKED, parseTcpReach, type TcpReach, tcpProbeArgv } from "../support/tcp-probe.js";

const SUITE = "the Kubernetes isolation test";
const noCluster = skipUnlessPlatform("a Kubernetes cluster", await kubernetesUnavailable(), SUITE);
const skip =
  noCluster ?? skipUnlessPlatform("a cluster that enforces NetworkPolicy", await networkPolicyUnenforced(), SUITE);

describe("sessions on Kubernetes are isolated by deploy/kubernetes' NetworkPolicies", skippedBecause(skip), () => {
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

  const podOf = (id: string) =>
    core.readNamespacedPod({ name: `sbx-${spawner.deployment}-${id}`, namespace: SESSIONS_NAMESPACE });

  /** Runs a command in a session through the spawner; fails the test unless it ran to completion. */
  async function execIn(id: string, argv: string[]): Promise<string> {
    const response = await spawner.json("POST", `/v1/sessions/${id}/execs?wait=true`, { argv });
    expect(response.status, JSON.stringify(response.body)).toBe(200);
    const result = ExecResultSchema.parse(response.body);
    expect(result.outcome, result.stderr).toBe("completed");
    return result.stdout;
  }

  /** How a TCP connection from inside session `id` to host:port ends. */
  const reachFrom = async (id: string, host: string, port: number): Promise<TcpReach> =>
    parseTcpReach(await execIn(id, tcpProbeArgv(host, port)));

  it("lets no session connect to another session's runnerd, while the spawner reaches both", async () => {
    const bob = (await podOf("bob")).status?.podIP ?? "";
    expect(bob).not.toBe("");
    // bob's runnerd does listen there: the spawner reaches it through that same address.
    expect(await execIn("bob", ["true"])).toBe("");
    expect(BLOCKED).toContain(await reachFrom("alice", bob, 7070));
  });

  it("still lets a session open connections of its own, on its own ports", async () => {
    // Also the proof that the probe can say "connected" from inside a session.
    const alice = (await podOf("alice")).status?.podIP ?? "";
    expect(await reachFrom("alice", alice, 7070)).toBe("connected");
  });

  /**
   * Known gaps, measured (docs: /work/shared/KUBERNETES-LAB.md, "What NetworkPolicy does not
   * cover"): traffic from a Pod to its own node is DNAT'ed or delivered locally, which the policy
   * enforcer does not filter, so sessions reach the node's listeners and the API server's ClusterIP
   * although sessions-egress excepts private ranges. The egress gateway work is to close them with
   * a guard of its own. Until then these are expected failures (`it.fails`): they pass while the
   * gap is open, and turn red once it is closed, to become plain tests. The connections are
   * measured before, so that nothing but the assertion can make them "fail as expected".
   */
  describe("known gaps until the egress gateway guards the node", () => {
    let apiServer: TcpReach;
    const nodeListener: Record<string, TcpReach> = {};
    let notOnNode: string | undefined;
    let listener: Server | undefined;

    beforeAll(async () => {
      const service = (
        await kubectl("get", "service", "kubernetes", "-n", "default", "-o", "jsonpath={.spec.clusterIP}")
      ).trim();
      expect(service).not.toBe("");
      apiServer = await reachFrom("alice", service, 443);

      // A listener on every address of the node, opened here: only possible when this process runs
      // on alice's node (deploy/local-cluster), not beside kind's or minikube's node.
      const nodeIp = (await podOf("alice")).status?.hostIP ?? "";
      const local = Object.values(networkInterfaces()).flatMap((addresses) => addresses?.map((a) => a.address) ?? []);
      if (!local.includes(nodeIp)) {
        notOnNode = `the tests do not run on the session's node (${nodeIp}), so they cannot open a listener there`;
        return;
      }
      const server = createServer((socket) => socket.end());
      listener = server;
      const port = await new Promise<number>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "0.0.0.0", () => {
          const address = server.address();
          if (address && typeof address === "object") resolve(address.port);
          else reject(new Error("the node listener has no port"));
        });
      });
      const gateway = defaultGateway(await execIn("alice", ["cat", "/proc/net/route"]));
      for (const [name, host] of [
        ["the Pod network's gateway", gateway],
        ["the node's address", nodeIp],
      ] as const) {
        nodeListener[name] = await reachFrom("alice", host, port);
      }
    });
    afterAll(async () => {
      const server = listener;
      if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    it.fails("lets no session connect to the API server's ClusterIP (known gap: connected today)", () => {
      expect(BLOCKED).toContain(apiServer);
    });

    it.fails("lets no session connect to a listener on its node (known gap: connected today)", (context) => {
      if (notOnNode) context.skip(notOnNode);
      for (const [where, reach] of Object.entries(nodeListener)) expect(BLOCKED, where).toContain(reach);
    });
  });
});

/** The default route's gateway from /proc/net/route (the runtime image has no `ip`). */
function defaultGateway(routes: string): string {
  for (const line of routes.split("\n").slice(1)) {
    const [, destination, gateway] = line.trim().split(/\s+/);
    if (destination === "00000000" && gateway && gateway !== "00000000") {
      // Little-endian hex: 0100F40A is 10.244.0.1.
      return (gateway.match(/../g) ?? [])
        .map((byte) => Number.parseInt(byte, 16))
        .reverse()
        .join(".");
    }
  }
  throw new Error(`no default route in ${JSON.stringify(routes)}`);
}
