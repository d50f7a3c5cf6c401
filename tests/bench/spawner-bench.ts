// Spawner benchmarks against the obvious alternative, in one run on one engine:
//   exec round trip through the spawner   vs  `docker exec` (Engine API, as dockerode does it)
//   stdout throughput through the spawner vs  `docker exec` of the same command
//   session create → first exec output    vs  `docker run -d` of the same image + waiting for it
//
//   node tests/bench/run.mjs spawner-bench [--runs N] [--throughput-runs N] [--mib N] [--create-runs N]
//     [--access address|published]
//
// Needs a Docker engine, the built spawner and sbx-runtime:latest (`bun run images`).
// Every side reaches runnerd the same way, named by --access: `address` (the spawner's default,
// SPAWNER_RUNNERD_ACCESS) at the container's address on its network, routed by the host;
// `published` through a port published on 127.0.0.1 (Docker's userland proxy, one more process hop).
import { randomBytes } from "node:crypto";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { signRequest } from "@sbx/protocol";
import Docker from "dockerode";
import { RUNTIME_IMAGE, removeDeployment } from "../support/docker.js";
import { startSpawner } from "../support/spawner.js";
import { dockerExec } from "./alternatives.js";
import { agent, measureAlternating, ms, readSsePayload, request, stats, timed, whole } from "./measure.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "300" },
    "throughput-runs": { type: "string", default: "5" },
    mib: { type: "string", default: "200" },
    "create-runs": { type: "string", default: "10" },
    access: { type: "string", default: "address" },
  },
});
if (values.access !== "address" && values.access !== "published") {
  throw new Error(`--access must be address or published, not ${values.access}`);
}
const ACCESS = values.access;
const RUNS = Number(values.runs);
const THROUGHPUT_RUNS = Number(values["throughput-runs"]);
const MIB = Number(values.mib);
const CREATE_RUNS = Number(values["create-runs"]);
const BYTES = MIB * 1024 * 1024;

const docker = new Docker();

async function main() {
  const spawner = await startSpawner({
    env: {
      SPAWNER_MAX_SESSIONS: "100",
      SPAWNER_RUNNERD_ACCESS: ACCESS,
      SPAWNER_MAX_SESSIONS_PER_ORG: "100",
      SPAWNER_MAX_CPUS: "2",
      SPAWNER_MAX_MEMORY_MB: "4096",
      // Room for the whole payload: the figure is throughput, not the cut-off policy (see docs/performance.md).
      SPAWNER_RUNNERD_ENV: `RUNNERD_CONSUMER_BUFFER_BYTES=${2 * BYTES},RUNNERD_RETAIN_OUTPUT_EXECS=4`,
    },
  });
  const signed = (method: string, path: string, body?: string) => ({
    ...signRequest({ keyId: spawner.keyId, secret: spawner.secret, method, pathWithQuery: path, body }),
    ...(body === undefined ? {} : { "content-type": "application/json" }),
  });
  const call = (method: string, path: string, body?: unknown, onData: (chunk: string) => void = () => {}) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    return request(`${spawner.url}${path}`, method, signed(method, path, text), text, onData);
  };
  const rows: string[] = [];
  try {
    const created = await call("POST", "/v1/sessions", {
      id: "bench",
      org: "bench",
      resources: { cpus: 2, memoryMb: 2048 },
    });
    if (created !== 201) throw new Error(`could not create the benchmark session (${created})`);
    const container = docker.getContainer(`sbx-${spawner.deployment}-bench`);

    // ---- exec round trip ------------------------------------------------
    const viaWait = () => call("POST", "/v1/sessions/bench/execs?wait=true", { argv: ["true"] });
    const viaSse = () => call("POST", "/v1/sessions/bench/execs", { argv: ["true"] });
    const viaDocker = () => dockerExec(container, ["true"]);
    for (let i = 0; i < 20; i++) await Promise.all([viaWait(), viaDocker()]);
    // In blocks of 25: the engine's clean-up after each `docker exec` (runc, the shim) must not
    // land on the spawner's next request.
    const [dock = [], wait = [], sse = []] = await measureAlternating(
      [whole(viaDocker), whole(viaWait), whole(viaSse)],
      {
        runs: RUNS,
        block: 25,
      },
    );
    const d = stats(dock);
    rows.push(
      "| exec round trip of `true` | median | p90 | p99 | speed-up vs docker exec (median) |",
      "|---|---|---|---|---|",
    );
    rows.push(`| docker exec (Engine API) | ${ms(d.median)} | ${ms(d.p90)} | ${ms(d.p99)} | 1.0× |`);
    for (const [name, samples] of [
      ["spawner `?wait=true`", wait],
      ["spawner SSE to exit", sse],
    ] as const) {
      const s = stats(samples);
      rows.push(`| ${name} | ${ms(s.median)} | ${ms(s.p90)} | ${ms(s.p99)} | ${(d.median / s.median).toFixed(1)}× |`);
    }

    // ---- stdout throughput ----------------------------------------------
    await call("POST", "/v1/sessions/bench/execs?wait=true", {
      shell: `yes 'line of text for the throughput benchmark, 0123456789' | head -c ${BYTES} > /workspace/text.txt && head -c ${BYTES} /dev/urandom > /workspace/random.bin`,
    });
    rows.push(
      "",
      `| stdout throughput, ${MIB} MiB (median of ${THROUGHPUT_RUNS}) | spawner | docker exec | ratio |`,
      "|---|---|---|---|",
    );
    for (const [name, file, encoding] of [
      ["text lines, utf8 mode", "/workspace/text.txt", "utf8"],
      ["random bytes, base64 mode", "/workspace/random.bin", "base64"],
    ] as const) {
      // Each side checks it got every byte, outside the clock.
      const viaSpawner = async () => {
        let got = 0;
        const time = await timed(async () => {
          got = await readSsePayload((onData) =>
            call("POST", "/v1/sessions/bench/execs", { argv: ["cat", file], encoding }, onData),
          );
        });
        if (got !== BYTES) throw new Error(`${name}: spawner delivered ${got} of ${BYTES} bytes`);
        return time;
      };
      const viaDockerExec = async () => {
        let seen = 0;
        const time = await timed(() =>
          dockerExec(container, ["cat", file], (n) => {
            seen += n;
          }),
        );
        if (seen !== BYTES) throw new Error(`${name}: docker exec delivered ${seen} of ${BYTES} bytes`);
        return time;
      };
      const [spawnerTimes = [], dockerTimes = []] = await measureAlternating([viaSpawner, viaDockerExec], {
        runs: THROUGHPUT_RUNS,
        warmup: 1,
      });
      const ours = spawnerTimes.map((t) => BYTES / 1e6 / (t / 1000));
      const theirs = dockerTimes.map((t) => BYTES / 1e6 / (t / 1000));
      const a = stats(ours).median;
      const b = stats(theirs).median;
      rows.push(`| ${name} | ${a.toFixed(0)} MB/s | ${b.toFixed(0)} MB/s | ${(a / b).toFixed(2)}× |`);
    }
    await call("DELETE", "/v1/sessions/bench");

    // ---- create to first output -----------------------------------------
    // Three sides, each cleaned up outside its clock: the spawner's session (on its network, where
    // sessions cannot reach each other), a bare container on Docker's default bridge (what a plain
    // `docker run -d` gets), and a bare container on the sessions' network (what the network costs
    // at start, apart from the spawner's own work).
    const viaSpawner = async () => {
      const id = `c-${randomBytes(3).toString("hex")}`;
      let output = "";
      const time = await timed(async () => {
        const status = await call("POST", "/v1/sessions", { id, org: "bench" });
        if (status !== 201) throw new Error(`create ${id}: ${status}`);
        await call("POST", `/v1/sessions/${id}/execs?wait=true`, { argv: ["echo", "first"] }, (c) => {
          output += c;
        });
      });
      if (!output.includes('"stdout":"first\\n"')) throw new Error(`no first output: ${output}`);
      await call("DELETE", `/v1/sessions/${id}`);
      return time;
    };
    const [spawnerTimes = [], bridgeTimes = [], networkTimes = []] = await measureAlternating(
      [viaSpawner, bareRun("bridge"), bareRun(`sbx-${spawner.deployment}`)],
      { runs: CREATE_RUNS, warmup: 1 },
    );
    const o = stats(spawnerTimes).median;
    const t = stats(bridgeTimes).median;
    const n = stats(networkTimes).median;
    rows.push(
      "",
      `| create → first output (median of ${CREATE_RUNS}) | time | vs bare docker run -d |`,
      "|---|---|---|",
      `| bare docker run -d + runnerd answering, default bridge | ${ms(t)} | 1.00× |`,
      `| bare docker run -d + runnerd answering, the sessions' network | ${ms(n)} | ${(n / t).toFixed(2)}× |`,
      `| spawner: create session + first exec output | ${ms(o)} | ${(o / t).toFixed(2)}× |`,
    );
  } finally {
    await spawner.stop();
    agent.destroy();
    await removeDeployment(spawner.deployment);
  }
  console.log(`spawner benchmark — ${new Date().toISOString()}, Node ${process.version}, ${cpus().length} CPUs`);
  console.log(
    `(${RUNS} round trips each; every side reaches runnerd by ${ACCESS === "address" ? "the container's address" : "a port published on 127.0.0.1"} (--access ${ACCESS}); sides alternate which goes first; MB = 10^6 bytes of payload)\n`,
  );
  console.log(rows.join("\n"));
}

/**
 * A bare `docker run -d` of the runtime image on `network`, timed until its runnerd answers where
 * the spawner would reach it (ACCESS); the container is removed after the clock stops.
 */
function bareRun(network: string) {
  return async () => {
    let container: Docker.Container | undefined;
    try {
      return await timed(async () => {
        container = await docker.createContainer({
          Image: RUNTIME_IMAGE,
          Env: [`RUNNERD_TOKEN_SHA256=${"0".repeat(64)}`],
          ...(ACCESS === "published"
            ? {
                ExposedPorts: { "7070/tcp": {} },
                HostConfig: {
                  NetworkMode: network,
                  PortBindings: { "7070/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }] },
                },
              }
            : { HostConfig: { NetworkMode: network } }),
        });
        await container.start();
        const info = await container.inspect();
        const base =
          ACCESS === "published"
            ? `http://127.0.0.1:${info.NetworkSettings.Ports["7070/tcp"]?.[0]?.HostPort}`
            : `http://${info.NetworkSettings.Networks[network]?.IPAddress}:7070`;
        for (;;) {
          const ok = await fetch(`${base}/healthz`).then(
            (r) => r.ok,
            () => false,
          );
          if (ok) return;
          await new Promise((r) => setTimeout(r, 10));
        }
      });
    } finally {
      await container?.remove({ force: true });
    }
  };
}

await main();
