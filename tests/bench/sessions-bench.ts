// How fast a session is there to use, in one run on one backend, against the obvious alternative:
//   bare: `docker run -d` + runnerd answering (Docker), or a bare Pod + runnerd answering (Kubernetes)
//   cold: create a session → first exec output
//   warm: create a session claimed from the warm pool → first exec output
//   resume: resume a stopped session → first exec output
//
//   node tests/bench/run.mjs sessions-bench [--backend docker|kubernetes] [--runs N]
//
// Needs the built spawner and sbx-runtime:latest; for Kubernetes a cluster (KUBECONFIG, or
// deploy/local-cluster running). Every kind runs once unmeasured first, then in rotating order
// (measure.ts's measureAlternating, one by one).
import { randomBytes } from "node:crypto";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { CoreV1Api, KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { sha256Hex, signRequest } from "@sbx/protocol";
import { runnerdEnvironment } from "@sbx/spawner";
import Docker from "dockerode";
import { RUNTIME_IMAGE, removeDeployment } from "../support/docker.js";
import {
  adminKubeconfig,
  kubeBackendOf,
  removeKubeDeployment,
  SESSIONS_NAMESPACE,
  STORAGE_CLASS,
  startKubeSpawner,
} from "../support/kubernetes.js";
import { type SpawnerHandle, startSpawner } from "../support/spawner.js";
import { runningIp } from "./alternatives.js";
import { measureAlternating, ms, request, stats, timed } from "./measure.js";

const { values } = parseArgs({
  options: { backend: { type: "string", default: "docker" }, runs: { type: "string", default: "12" } },
});
const RUNS = Number(values.runs);
const KUBE = values.backend === "kubernetes";
const POOL = 2;

async function main() {
  const profiles = {
    // The same image and resources, with a warm pool: what a create of `warm` claims.
    warm: { images: [RUNTIME_IMAGE], pool: { size: POOL } },
    // Stoppable on Kubernetes needs a workspace on a claim.
    ...(KUBE
      ? {
          durable: {
            images: [RUNTIME_IMAGE],
            workspace: { persistent: true, sizeMb: 256, storageClass: STORAGE_CLASS },
          },
        }
      : {}),
  };
  const env = {
    SPAWNER_MAX_SESSIONS_PER_ORG: "100",
    SPAWNER_POOL_INTERVAL_MS: "200",
    SPAWNER_PROFILES: JSON.stringify(profiles),
  };
  const spawner: SpawnerHandle = KUBE ? await startKubeSpawner({ env }) : await startSpawner({ env });
  const call = (method: string, path: string, body?: unknown, onData: (chunk: string) => void = () => {}) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const headers = {
      ...signRequest({ keyId: spawner.keyId, secret: spawner.secret, method, pathWithQuery: path, body: text }),
      ...(text === undefined ? {} : { "content-type": "application/json" }),
    };
    return request(`${spawner.url}${path}`, method, headers, text, onData);
  };
  const firstOutput = async (id: string) => {
    let output = "";
    const status = await call("POST", `/v1/sessions/${id}/execs?wait=true`, { argv: ["echo", "first"] }, (c) => {
      output += c;
    });
    if (status !== 200 || !output.includes('"stdout":"first\\n"')) throw new Error(`no first output: ${output}`);
  };
  const create = async (id: string, profile: string) => {
    let answer = "";
    const status = await call("POST", "/v1/sessions", { id, org: "bench", profile }, (c) => {
      answer += c;
    });
    if (status !== 201) throw new Error(`create ${id}: ${status} ${answer}`);
  };
  const poolMembers = async () => {
    const text = await (await fetch(`${spawner.metricsUrl()}/metrics`)).text();
    return Number(/^sbx_pool_members\{profile="warm"\} (\d+)/m.exec(text)?.[1] ?? 0);
  };
  const settle = async () => {
    // The pool full again and quiet: a claim's refill must not land on the next measurement.
    while ((await poolMembers()) < POOL) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
  };
  const bare = KUBE ? await barePodStarter() : bareDockerStarter();

  // Each kind times its own part; creating what it needs and deleting what it made stay outside.
  const bareOnce = async () => {
    const { time, cleanup } = await bare();
    await cleanup();
    return time;
  };
  const coldOnce = async () => {
    const id = `cold-${randomBytes(3).toString("hex")}`;
    const time = await timed(async () => {
      await create(id, "default");
      await firstOutput(id);
    });
    await call("DELETE", `/v1/sessions/${id}`);
    return time;
  };
  const warmOnce = async () => {
    await settle();
    const id = `warm-${randomBytes(3).toString("hex")}`;
    const time = await timed(async () => {
      await create(id, "warm");
      await firstOutput(id);
    });
    await call("DELETE", `/v1/sessions/${id}`);
    return time;
  };
  const resumeOnce = async () => {
    const id = `nap-${randomBytes(3).toString("hex")}`;
    await create(id, KUBE ? "durable" : "default");
    await firstOutput(id);
    if ((await call("POST", `/v1/sessions/${id}/stop`)) !== 200) throw new Error(`stop ${id} failed`);
    const time = await timed(async () => {
      if ((await call("POST", `/v1/sessions/${id}/resume`)) !== 200) throw new Error(`resume ${id} failed`);
      await firstOutput(id);
    });
    await call("DELETE", `/v1/sessions/${id}`);
    return time;
  };
  let samples: number[][];
  try {
    samples = await measureAlternating([bareOnce, coldOnce, warmOnce, resumeOnce], { runs: RUNS, warmup: 1 });
  } finally {
    await spawner.stop();
    if (KUBE) await removeKubeDeployment(spawner.deployment);
    else await removeDeployment(spawner.deployment);
  }
  const [bareTimes = [], coldTimes = [], warmTimes = [], resumeTimes = []] = samples;
  const base = stats(bareTimes).median;
  const cold = stats(coldTimes).median;
  const row = (label: string, times: number[]) => {
    const x = stats(times);
    return `| ${label} | ${ms(x.median)} | ${ms(x.p90)} | ${(x.median / base).toFixed(2)}× | ${(x.median / cold).toFixed(2)}× |`;
  };
  console.log(
    `sessions benchmark (${values.backend}) — ${new Date().toISOString()}, Node ${process.version}, ${cpus().length} CPUs`,
  );
  console.log(`(median and p90 of ${RUNS} runs each, rotating order)\n`);
  console.log("| → first exec output | median | p90 | vs bare | vs cold create |");
  console.log("|---|---|---|---|---|");
  console.log(row(KUBE ? "bare Pod + runnerd answering" : "bare `docker run -d` + runnerd answering", bareTimes));
  console.log(row("cold create", coldTimes));
  console.log(row("warm pool claim", warmTimes));
  console.log(row("resume of a stopped session", resumeTimes));
}

/** `docker run -d` of the runtime image, timed until its runnerd answers at its address. */
function bareDockerStarter() {
  const docker = new Docker();
  return async () => {
    let container: Docker.Container | undefined;
    const time = await timed(async () => {
      // Reached by its address on the default bridge, as the spawner reaches sessions: no proxy.
      container = await docker.createContainer({
        Image: RUNTIME_IMAGE,
        Env: [`RUNNERD_TOKEN_SHA256=${"0".repeat(64)}`],
      });
      await container.start();
      const ip = (await container.inspect()).NetworkSettings.Networks.bridge?.IPAddress;
      await answering(`http://${ip}:7070`);
    });
    return { time, cleanup: async () => void (await container?.remove({ force: true })) };
  };
}

/** The very Pod the spawner would make, created with the admin's client, timed until its runnerd answers. */
async function barePodStarter() {
  const admin = new KubeConfig();
  admin.loadFromFile(adminKubeconfig() ?? "");
  const core = admin.makeApiClient(CoreV1Api);
  const backend = kubeBackendOf(`bare-${randomBytes(3).toString("hex")}`);
  return async () => {
    const id = `b-${randomBytes(3).toString("hex")}`;
    const pod: V1Pod = backend.podOf({
      id,
      image: RUNTIME_IMAGE,
      meta: { labels: { "sbx.dev/session-id": id }, annotations: {} },
      runnerdEnv: runnerdEnvironment(sha256Hex(randomBytes(16).toString("hex")), 1024, {}),
      resources: { cpus: 1, memoryMb: 1024, pids: 1024 },
      workspace: { persistent: false, sizeMb: 1024 },
    });
    const name = pod.metadata?.name ?? "";
    const time = await timed(async () => {
      const created = await core.createNamespacedPod({ namespace: SESSIONS_NAMESPACE, body: pod });
      const ip = await runningIp(admin, name, created.metadata?.resourceVersion);
      await answering(`http://${ip}:7070`);
    });
    return {
      time,
      cleanup: async () => {
        await core.deleteNamespacedPod({ name, namespace: SESSIONS_NAMESPACE, gracePeriodSeconds: 0 });
      },
    };
  };
}

async function answering(base: string): Promise<void> {
  for (;;) {
    const ok = await fetch(`${base}/healthz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

await main();
