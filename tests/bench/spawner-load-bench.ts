// The spawner's memory under many long streams: N concurrent SSE streams across S sessions for
// about a minute; every stream must receive every event, and the spawner's resident memory is
// sampled before, during and after.
//
//   node tests/bench/run.mjs spawner-load-bench [--sessions 20] [--streams 1000] [--lines 600]
//
// Needs a Docker engine, the built spawner and sbx-runtime:latest (`bun run images`).
import { readFileSync } from "node:fs";
import http from "node:http";
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { signRequest } from "@sbx/protocol";
import { createParser } from "eventsource-parser";
import { removeDeployment } from "../support/docker.js";
import { startSpawner } from "../support/spawner.js";

const { values } = parseArgs({
  options: {
    sessions: { type: "string", default: "20" },
    streams: { type: "string", default: "1000" },
    lines: { type: "string", default: "600" },
  },
});
const SESSIONS = Number(values.sessions);
const STREAMS = Number(values.streams);
const LINES = Number(values.lines);
const MiB = 1024 * 1024;

/** Resident memory of a process, from /proc. */
function rss(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(match?.[1] ?? 0) * 1024;
}

async function main() {
  const spawner = await startSpawner({
    env: { SPAWNER_MAX_SESSIONS: String(SESSIONS + 5), SPAWNER_MAX_SESSIONS_PER_ORG: String(SESSIONS + 5) },
  });
  const pid = spawner.child.pid ?? 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  const send = (method: string, path: string, body?: unknown, onData?: (chunk: string) => void) =>
    new Promise<number>((resolve, reject) => {
      const text = body === undefined ? undefined : JSON.stringify(body);
      const headers = signRequest({
        keyId: spawner.keyId,
        secret: spawner.secret,
        method,
        pathWithQuery: path,
        body: text,
      });
      const req = http.request(`${spawner.url}${path}`, { method, agent, headers }, (res) => {
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => onData?.(chunk));
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(text);
    });

  const ids = Array.from({ length: SESSIONS }, (_, i) => `load-${i}`);
  try {
    for (const id of ids) {
      const status = await send("POST", "/v1/sessions", { id, org: "load", resources: { memoryMb: 256, cpus: 0.25 } });
      if (status !== 201) throw new Error(`create ${id}: ${status}`);
    }
    // Let start-up garbage settle before the baseline.
    await new Promise((r) => setTimeout(r, 3000));
    const before = rss(pid);

    // Start each ticker and hang up at once: it keeps running (nobody attached for up to its orphan
    // timeout), and the streams below replay it from the first event.
    await Promise.all(
      ids.map(
        (id) =>
          new Promise<void>((resolve, reject) => {
            const path = `/v1/sessions/${id}/execs`;
            const text = JSON.stringify({
              execId: "ticker",
              shell: `for i in $(seq 1 ${LINES}); do echo "line $i"; sleep 0.1; done`,
              orphanTimeoutMs: 600_000,
            });
            const headers = signRequest({
              keyId: spawner.keyId,
              secret: spawner.secret,
              method: "POST",
              pathWithQuery: path,
              body: text,
            });
            const req = http.request(`${spawner.url}${path}`, { method: "POST", agent, headers }, (res) => {
              res.destroy();
              if (res.statusCode === 200) resolve();
              else reject(new Error(`exec on ${id}: ${res.statusCode}`));
            });
            req.on("error", reject);
            req.end(text);
          }),
      ),
    );

    let peak = before;
    const sampler = setInterval(() => {
      peak = Math.max(peak, rss(pid));
    }, 500);
    const started = performance.now();
    const results = await Promise.all(
      Array.from({ length: STREAMS }, async (_, n) => {
        const id = ids[n % SESSIONS] ?? "";
        let lines = 0;
        let exit = false;
        const parser = createParser({
          onEvent: (event) => {
            if (event.event === "stdout") lines += (JSON.parse(event.data).text.match(/\n/g) ?? []).length;
            else if (event.event === "exit") exit = true;
          },
        });
        await send("GET", `/v1/sessions/${id}/execs/ticker/events?after=0`, undefined, (chunk) => parser.feed(chunk));
        return { lines, exit };
      }),
    );
    clearInterval(sampler);
    const seconds = (performance.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 5000));
    const after = rss(pid);
    const complete = results.filter((r) => r.exit && r.lines === LINES).length;

    console.log(`spawner load benchmark — ${new Date().toISOString()}, Node ${process.version}, ${cpus().length} CPUs`);
    console.log(
      `(${STREAMS} concurrent SSE streams across ${SESSIONS} sessions, ${LINES} events each, ${seconds.toFixed(0)} s)\n`,
    );
    console.log("| spawner resident memory | MiB | vs before |");
    console.log("|---|---|---|");
    console.log(`| before the streams | ${(before / MiB).toFixed(1)} | 1.00× |`);
    console.log(`| peak during | ${(peak / MiB).toFixed(1)} | ${(peak / before).toFixed(2)}× |`);
    console.log(`| 5 s after | ${(after / MiB).toFixed(1)} | ${(after / before).toFixed(2)}× |`);
    console.log(`\nstreams that received every event and the exit: ${complete} of ${STREAMS}`);
    if (complete !== STREAMS) process.exitCode = 1;
  } finally {
    agent.destroy();
    await spawner.stop();
    await removeDeployment(spawner.deployment);
  }
}

await main();
