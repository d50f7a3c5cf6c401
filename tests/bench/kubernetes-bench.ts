// Session create on Kubernetes against the obvious alternative, in one run on one cluster:
//   spawner: create session → first exec output   vs   a bare Pod create → runnerd answering
//
//   node tests/bench/run.mjs kubernetes-bench [--runs N]
//
// Needs a cluster (KUBECONFIG, or deploy/local-cluster running), the built spawner and
// sbx-runtime:latest. The bare Pod is the very Pod the spawner would make (same image, security
// context and limits), created with the admin's client and followed with a watch, then polled
// until runnerd's /healthz answers: what a hand-written integration would do at best.
import { randomBytes } from "node:crypto";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { CoreV1Api, KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { sha256Hex, signRequest } from "@sbx/protocol";
import { runnerdEnvironment } from "@sbx/spawner";
import { RUNTIME_IMAGE } from "../support/docker.js";
import {
  adminKubeconfig,
  kubeBackendOf,
  removeKubeDeployment,
  SESSIONS_NAMESPACE,
  startKubeSpawner,
} from "../support/kubernetes.js";
import { runningIp } from "./alternatives.js";
import { measureAlternating, ms, request, stats, timed } from "./measure.js";

const { values } = parseArgs({ options: { runs: { type: "string", default: "12" } } });
const RUNS = Number(values.runs);

async function main() {
  const spawner = await startKubeSpawner({ env: { SPAWNER_MAX_SESSIONS_PER_ORG: "100" } });
  const admin = new KubeConfig();
  admin.loadFromFile(adminKubeconfig() ?? "");
  const core = admin.makeApiClient(CoreV1Api);
  const bareDeployment = `bare-${randomBytes(3).toString("hex")}`;
  const bare = kubeBackendOf(bareDeployment);
  const call = (method: string, path: string, body?: unknown, onData: (chunk: string) => void = () => {}) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const headers = {
      ...signRequest({ keyId: spawner.keyId, secret: spawner.secret, method, pathWithQuery: path, body: text }),
      ...(text === undefined ? {} : { "content-type": "application/json" }),
    };
    return request(`${spawner.url}${path}`, method, headers, text, onData);
  };

  // Each side times its own part; deleting what it made stays outside the clock.
  const viaSpawner = async () => {
    const id = `k-${randomBytes(3).toString("hex")}`;
    let output = "";
    const time = await timed(async () => {
      let answer = "";
      const status = await call("POST", "/v1/sessions", { id, org: "bench" }, (c) => {
        answer += c;
      });
      if (status !== 201) throw new Error(`create ${id}: ${status} ${answer}`);
      await call("POST", `/v1/sessions/${id}/execs?wait=true`, { argv: ["echo", "first"] }, (c) => {
        output += c;
      });
    });
    if (!output.includes('"stdout":"first\\n"')) throw new Error(`no first output: ${output}`);
    await call("DELETE", `/v1/sessions/${id}`);
    return time;
  };
  const barePod = async () => {
    const id = `b-${randomBytes(3).toString("hex")}`;
    const token = randomBytes(16).toString("hex");
    const pod: V1Pod = bare.podOf({
      id,
      image: RUNTIME_IMAGE,
      meta: { labels: { "sbx.dev/session-id": id }, annotations: {} },
      runnerdEnv: runnerdEnvironment(sha256Hex(token), 1024, {}),
      resources: { cpus: 1, memoryMb: 1024, pids: 1024 },
      workspace: { persistent: false, sizeMb: 1024 },
    });
    const time = await timed(async () => {
      const created = await core.createNamespacedPod({ namespace: SESSIONS_NAMESPACE, body: pod });
      const ip = await runningIp(admin, pod.metadata?.name ?? "", created.metadata?.resourceVersion);
      for (;;) {
        const ok = await fetch(`http://${ip}:7070/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (ok) break;
        await new Promise((r) => setTimeout(r, 10));
      }
    });
    await core.deleteNamespacedPod({ name: pod.metadata?.name ?? "", namespace: SESSIONS_NAMESPACE });
    return time;
  };

  let samples: number[][];
  try {
    // One of each first, unmeasured (image layers and the kubelet's caches warm up), then
    // alternating which goes first.
    samples = await measureAlternating([viaSpawner, barePod], { runs: RUNS, warmup: 1 });
  } finally {
    await spawner.stop();
    await removeKubeDeployment(spawner.deployment);
    await removeKubeDeployment(bareDeployment);
  }
  const [ours = [], theirs = []] = samples;
  const o = stats(ours);
  const t = stats(theirs);
  console.log(`kubernetes benchmark — ${new Date().toISOString()}, Node ${process.version}, ${cpus().length} CPUs`);
  console.log(`(median of ${RUNS} runs each, alternating order; p90 in brackets)\n`);
  console.log("| create → first output | time | vs bare Pod |");
  console.log("|---|---|---|");
  console.log(`| bare Pod create → runnerd answering | ${ms(t.median)} (p90 ${ms(t.p90)}) | 1.00× |`);
  console.log(
    `| spawner: create session + first exec output | ${ms(o.median)} (p90 ${ms(o.p90)}) | ${(o.median / t.median).toFixed(2)}× |`,
  );
}

await main();
