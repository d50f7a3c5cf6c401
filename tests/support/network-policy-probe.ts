import { randomBytes } from "node:crypto";
import { CoreV1Api, KubeConfig, NetworkingV1Api, type V1Pod } from "@kubernetes/client-node";
import { RUNTIME_IMAGE } from "./docker.js";
import { adminKubeconfig, kubectl, loadImages } from "./kubernetes.js";
import { eventually, pollUntil } from "./proc.js";
import { BLOCKED, parseTcpReach, type TcpReach, tcpProbeArgv } from "./tcp-probe.js";

const PORT = 8080;

/**
 * Why this cluster does not enforce NetworkPolicy, or undefined when it does, measured: in a
 * namespace of its own, a client Pod connects to a listener Pod (proving the path and the probe),
 * then a policy denies the listener all ingress and the same connection must stop working. Plain
 * Pods from the runtime image, so no sbx policy or spawner is involved: this tells a cluster
 * without enforcement (skip locally, fail on CI) from sbx policies that do not hold (a failure).
 */
export async function networkPolicyUnenforced(): Promise<string | undefined> {
  const config = new KubeConfig();
  config.loadFromFile(adminKubeconfig() ?? "");
  const core = config.makeApiClient(CoreV1Api);
  const namespace = `sbx-netpol-probe-${randomBytes(3).toString("hex")}`;
  await loadImages(RUNTIME_IMAGE);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  try {
    const listener = await runPod(core, namespace, "listener", [
      "node",
      "-e",
      `require("node:net").createServer((s) => s.end()).listen(${PORT})`,
    ]);
    await runPod(core, namespace, "client", ["sleep", "infinity"]);
    const reach = () => probeFromPod(namespace, "client", listener, PORT);
    // The listener may take a moment to bind after its Pod reports Running.
    const before = await pollUntil(reach, (r) => r === "connected", 20_000, 250);
    if (before !== "connected") {
      throw new Error(`the NetworkPolicy probe is inconclusive: with no policy, Pod to Pod was ${before}`);
    }
    await config.makeApiClient(NetworkingV1Api).createNamespacedNetworkPolicy({
      namespace,
      body: {
        metadata: { name: "deny-listener-ingress" },
        spec: { podSelector: { matchLabels: { probe: "listener" } }, policyTypes: ["Ingress"] },
      },
    });
    // Enforcers apply a new policy within a few seconds.
    const after = await pollUntil(reach, (r) => BLOCKED.includes(r), 30_000, 250);
    if (BLOCKED.includes(after)) return undefined;
    return `this cluster does not enforce NetworkPolicy: a Pod still ${after} to a Pod whose policy denies all ingress`;
  } finally {
    await kubectl("delete", "namespace", namespace, "--wait=true", "--timeout=120s").catch((error: unknown) => {
      console.warn(`could not delete the probe namespace ${namespace}: ${String(error)}`);
    });
  }
}

/** Starts a Pod from the runtime image running `command`; resolves with its IP once it runs. */
async function runPod(core: CoreV1Api, namespace: string, name: string, command: string[]): Promise<string> {
  const body: V1Pod = {
    metadata: { name, labels: { probe: name } },
    spec: {
      terminationGracePeriodSeconds: 0,
      automountServiceAccountToken: false,
      containers: [{ name, image: RUNTIME_IMAGE, imagePullPolicy: "IfNotPresent", command }],
    },
  };
  await core.createNamespacedPod({ namespace, body });
  let ip = "";
  const running = await eventually(async () => {
    const pod = await core.readNamespacedPod({ name, namespace });
    ip = pod.status?.phase === "Running" ? (pod.status.podIP ?? "") : "";
    return ip !== "";
  }, 90_000);
  if (!running) throw new Error(`the NetworkPolicy probe's Pod ${namespace}/${name} did not start`);
  return ip;
}

async function probeFromPod(namespace: string, pod: string, host: string, port: number): Promise<TcpReach> {
  return parseTcpReach(await kubectl("exec", "-n", namespace, pod, "--", ...tcpProbeArgv(host, port, 2000)));
}
