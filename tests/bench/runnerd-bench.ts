// runnerd benchmarks: each figure is a ratio against the obvious alternative
// measured in the same run (spawning the command directly from Node).
//
//   node tests/bench/run.mjs runnerd-bench [--runs N] [--throughput-runs N] [--mib N]
//
// Prints a Markdown table; docs/performance.md holds the last recorded figures.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { cpus } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { startRunnerd } from "../support/runnerd.js";
import { agent, measureAlternating, ms, readSsePayload, request, stats, timed, whole } from "./measure.js";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "500" },
    "throughput-runs": { type: "string", default: "5" },
    mib: { type: "string", default: "200" },
  },
});
const RUNS = Number(values.runs);
const THROUGHPUT_RUNS = Number(values["throughput-runs"]);
const MIB = Number(values.mib);

const post = (port: number, token: string, pathAndQuery: string, body: unknown, onData: (chunk: string) => void) =>
  request(
    `http://127.0.0.1:${port}${pathAndQuery}`,
    "POST",
    { authorization: `Bearer ${token}`, "content-type": "application/json" },
    JSON.stringify(body),
    onData,
  );

const spawnDirect = (argv: string[]) =>
  new Promise<void>((resolve, reject) => {
    const [file, ...args] = argv;
    if (!file) throw new Error("empty argv");
    const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.resume();
    child.stderr.resume();
    child.once("error", reject);
    child.once("close", () => resolve());
  });

/** Reads `cat FILE` directly and returns the bytes read. */
const readDirect = (file: string) =>
  new Promise<number>((resolve, reject) => {
    let bytes = 0;
    const child = spawn("cat", [file], { stdio: ["ignore", "pipe", "inherit"] });
    child.stdout.on("data", (chunk: Buffer) => {
      bytes += chunk.length;
    });
    child.once("error", reject);
    child.once("close", () => resolve(bytes));
  });

/** Streams `cat FILE` through runnerd's SSE and returns the payload bytes received (decoded). */
const readThroughRunnerd = (port: number, token: string, file: string, encoding: "utf8" | "base64") =>
  readSsePayload((onData) => post(port, token, "/v1/execs", { argv: ["cat", file], encoding }, onData));

async function writeFile(file: string, chunkOf: () => Buffer, total: number) {
  const out = createWriteStream(file);
  for (let written = 0; written < total; ) {
    const chunk = chunkOf().subarray(0, total - written);
    written += chunk.length;
    if (!out.write(chunk)) await new Promise<void>((r) => out.once("drain", () => r()));
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
}

async function main() {
  const runnerd = await startRunnerd({
    env: {
      // Finished execs are forgotten quickly so hundreds of runs do not pile up.
      RUNNERD_RETAIN_OUTPUT_EXECS: "4",
      // On two shared cores the reading client can lag the producer for a while; with room
      // for the whole payload the figure measures throughput, not the cut-off policy.
      RUNNERD_CONSUMER_BUFFER_BYTES: String(2 * MIB * 1024 * 1024),
    },
  });
  const { root, token } = runnerd;
  const port = Number(new URL(runnerd.url).port);
  runnerd.child.stdout?.on("data", (chunk: Buffer) => {
    if (chunk.includes("slow consumer")) process.stderr.write("runnerd: a benchmark consumer was cut off\n");
  });
  const rows: string[] = [];
  try {
    // ---- exec round trip ------------------------------------------------
    const waitOnce = () => post(port, token, "/v1/execs?wait=true", { argv: ["true"] }, () => {});
    const sseOnce = () => post(port, token, "/v1/execs", { argv: ["true"] }, () => {});
    const directOnce = () => spawnDirect(["true"]);
    for (let i = 0; i < 30; i++) await Promise.all([waitOnce(), directOnce()]); // warm-up
    // One at a time, alternating, so drift on a shared machine hits all three alike.
    const [direct = [], wait = [], sse = []] = await measureAlternating(
      [whole(directOnce), whole(waitOnce), whole(sseOnce)],
      {
        runs: RUNS,
      },
    );
    const d = stats(direct);
    rows.push("| exec round trip of `true` | median | p90 | p99 | vs direct (median) |", "|---|---|---|---|---|");
    rows.push(`| child_process.spawn (direct) | ${ms(d.median)} | ${ms(d.p90)} | ${ms(d.p99)} | 1.00× |`);
    for (const [name, samples] of [
      ["runnerd `POST /v1/execs?wait=true`", wait],
      ["runnerd `POST /v1/execs` (SSE to exit)", sse],
    ] as const) {
      const s = stats(samples);
      rows.push(`| ${name} | ${ms(s.median)} | ${ms(s.p90)} | ${ms(s.p99)} | ${(s.median / d.median).toFixed(2)}× |`);
    }

    // ---- stdout throughput ----------------------------------------------
    const bytes = MIB * 1024 * 1024;
    const textFile = path.join(root, "text.txt");
    const binFile = path.join(root, "random.bin");
    let line = 0;
    await writeFile(
      textFile,
      () => {
        let s = "";
        for (let i = 0; i < 1000; i++) s += `line ${++line}: the quick brown fox jumps over the lazy dog\n`;
        return Buffer.from(s);
      },
      bytes,
    );
    await writeFile(binFile, () => randomBytes(1024 * 1024), bytes);
    rows.push(
      "",
      `| stdout throughput, ${MIB} MiB (median of ${THROUGHPUT_RUNS}) | runnerd | direct read | ratio |`,
      "|---|---|---|---|",
    );
    for (const [name, file, encoding] of [
      ["text lines, utf8 mode", textFile, "utf8"],
      ["random bytes, base64 mode", binFile, "base64"],
    ] as const) {
      // Each side checks it got every byte, outside the clock.
      const throughRunnerd = async () => {
        let got = 0;
        const time = await timed(async () => {
          got = await readThroughRunnerd(port, token, file, encoding);
        });
        if (got !== bytes) throw new Error(`${name}: runnerd delivered ${got} of ${bytes} bytes`);
        return time;
      };
      const direct = async () => {
        let got = 0;
        const time = await timed(async () => {
          got = await readDirect(file);
        });
        if (got !== bytes) throw new Error(`${name}: the direct read got ${got} of ${bytes} bytes`);
        return time;
      };
      const [runnerdTimes = [], directTimes = []] = await measureAlternating([throughRunnerd, direct], {
        runs: THROUGHPUT_RUNS,
        warmup: 1,
      });
      const ours = runnerdTimes.map((t) => bytes / 1e6 / (t / 1000));
      const theirs = directTimes.map((t) => bytes / 1e6 / (t / 1000));
      const a = stats(ours).median;
      const b = stats(theirs).median;
      rows.push(`| ${name} | ${a.toFixed(0)} MB/s | ${b.toFixed(0)} MB/s | ${(a / b).toFixed(2)}× |`);
    }
  } finally {
    await runnerd.stop();
    agent.destroy();
  }
  console.log(`runnerd benchmark — ${new Date().toISOString()}, Node ${process.version}, ${cpus().length} CPUs`);
  console.log(
    `(${RUNS} round trips each, one by one in rotating order; throughput alternating which goes first; MB = 10^6 bytes of payload)\n`,
  );
  console.log(rows.join("\n"));
}

await main();
