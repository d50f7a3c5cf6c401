// Moving bytes in and out of a session against the obvious alternative, in one run on one engine:
//   `sbx cp` of a file and of a directory, up and down   vs   `docker cp` of the same bytes
//   exec output through the spawner (SSE text, SSE base64, binary frames)   vs   `docker exec`
//
//   node tests/bench/run.mjs transfer-bench [--runs N] [--mib N] [--files N]
//
// Needs a Docker engine, the built spawner and CLI (`bun run build`) and sbx-runtime:latest.
// Both sides are whole commands (a process each: `sbx` and `docker`), as a user runs them; the
// spawner reaches runnerd by address, as compose runs it.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { EXEC_FRAMES_MEDIA_TYPE, signRequest } from "@sbx/protocol";
import Docker from "dockerode";
import { removeDeployment } from "../support/docker.js";
import { startSpawner } from "../support/spawner.js";
import { dockerExec } from "./alternatives.js";
import { agent, readFramesPayload, readSsePayload, request, stats, timed } from "./measure.js";

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "10" },
    mib: { type: "string", default: "200" },
    files: { type: "string", default: "2000" },
    only: { type: "string", default: "" },
  },
});
const RUNS = Number(values.runs);
const MIB = Number(values.mib);
const FILES = Number(values.files);
const BYTES = MIB * 1024 * 1024;
const CLI = fileURLToPath(new URL("../../packages/client/dist/cli/main.js", import.meta.url));
const docker = new Docker();

async function main() {
  const spawner = await startSpawner({
    env: {
      SPAWNER_MAX_CPUS: "2",
      SPAWNER_MAX_MEMORY_MB: "4096",
      SPAWNER_RUNNERD_ENV: `RUNNERD_CONSUMER_BUFFER_BYTES=${2 * BYTES},RUNNERD_RETAIN_OUTPUT_EXECS=4`,
    },
  });
  const local = await mkdtemp(path.join(tmpdir(), "sbx-transfer-"));
  const cliEnv = { ...process.env, SBX_URL: spawner.url, SBX_KEY_ID: spawner.keyId, SBX_SECRET: spawner.secret };
  const sbx = (...args: string[]) => run(process.execPath, [CLI, ...args], { env: cliEnv, maxBuffer: 1 << 20 });
  const signed = (method: string, p: string, body?: string) => ({
    ...signRequest({ keyId: spawner.keyId, secret: spawner.secret, method, pathWithQuery: p, body }),
    ...(body === undefined ? {} : { "content-type": "application/json" }),
  });
  const call = (method: string, p: string, body?: unknown, onData: (c: string) => void = () => {}) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    return request(`${spawner.url}${p}`, method, signed(method, p, text), text, onData);
  };
  const rows: string[] = [];
  const want = (name: string) => values.only === "" || values.only.split(",").includes(name);
  try {
    const created = await call("POST", "/v1/sessions", {
      id: "xfer",
      org: "bench",
      resources: { cpus: 2, memoryMb: 2048 },
    });
    if (created !== 201) throw new Error(`could not create the benchmark session (${created})`);
    const container = docker.getContainer(`sbx-${spawner.deployment}-xfer`);
    const cname = `sbx-${spawner.deployment}-xfer`;

    // The payloads: one file of random bytes, and a tree of FILES files of the same total size.
    const file = path.join(local, "big.bin");
    await writeFile(file, randomBytes(BYTES));
    const tree = path.join(local, "tree");
    const per = Math.floor(BYTES / FILES);
    for (let i = 0; i < FILES; i++) {
      const dir = path.join(tree, `d${i % 50}`);
      if (i < 50) await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, `f${i}.bin`), randomBytes(per));
    }
    const treeBytes = per * FILES;
    rows.push(
      `| ${MIB} MiB (median of ${RUNS}) | sbx cp | docker cp | sbx cp vs docker cp (throughput) |`,
      "|---|---|---|---|",
    );
    const row = (name: string, ours: number[], theirs: number[]) => {
      const o = stats(ours).median;
      const t = stats(theirs).median;
      rows.push(`| ${name} | ${(o / 1000).toFixed(2)} s | ${(t / 1000).toFixed(2)} s | ${(t / o).toFixed(2)}× |`);
    };
    /** Times both `runs` times, alternating which goes first; one round before, not counted, warms both. */
    const pair = async (ours: () => Promise<unknown>, theirs: () => Promise<unknown>) => {
      const a: number[] = [];
      const b: number[] = [];
      await ours();
      await theirs();
      for (let i = 0; i < RUNS; i++) {
        if (i % 2 === 0) {
          a.push(await timed(ours));
          b.push(await timed(theirs));
        } else {
          b.push(await timed(theirs));
          a.push(await timed(ours));
        }
      }
      return [a, b] as const;
    };

    if (want("file")) {
      const [upOurs, upTheirs] = await pair(
        () => sbx("cp", file, "xfer:up.bin"),
        () => run("docker", ["cp", file, `${cname}:/workspace/up-docker.bin`]),
      );
      row("file up", upOurs, upTheirs);
      const down = path.join(local, "down.bin");
      const [downOurs, downTheirs] = await pair(
        () => sbx("cp", "xfer:up.bin", down),
        () => run("docker", ["cp", `${cname}:/workspace/up-docker.bin`, `${down}.docker`]),
      );
      row("file down", downOurs, downTheirs);
    }
    if (want("dir")) {
      const [upOurs, upTheirs] = await pair(
        async () => {
          await call("DELETE", "/v1/sessions/xfer/files?path=tree&recursive=true");
          await sbx("cp", tree, "xfer:tree");
        },
        async () => {
          await container
            .exec({ Cmd: ["rm", "-rf", "/workspace/tree-docker"] })
            .then((e) => e.start({}))
            .then((s) => new Promise((r) => s.on("end", r).resume()));
          await run("docker", ["cp", tree, `${cname}:/workspace/tree-docker`]);
        },
      );
      row(`directory up (${FILES} files)`, upOurs, upTheirs);
      const [downOurs, downTheirs] = await pair(
        async () => {
          await rm(path.join(local, "tree-down"), { recursive: true, force: true });
          await sbx("cp", "xfer:tree", path.join(local, "tree-down"));
        },
        async () => {
          await rm(path.join(local, "tree-down-docker"), { recursive: true, force: true });
          await run("docker", ["cp", `${cname}:/workspace/tree-docker`, path.join(local, "tree-down-docker")]);
        },
      );
      row(`directory down (${FILES} files)`, downOurs, downTheirs);
      void treeBytes;
    }

    if (want("exec")) {
      await call("POST", "/v1/sessions/xfer/execs?wait=true", {
        shell: `yes 'line of text for the throughput benchmark, 0123456789' | head -c ${BYTES} > /workspace/text.txt && head -c ${BYTES} /dev/urandom > /workspace/random.bin`,
      });
      rows.push(
        "",
        `| exec output, ${MIB} MiB (median of ${RUNS}) | spawner | docker exec | ratio |`,
        "|---|---|---|---|",
      );
      for (const [name, file, encoding, framing] of [
        ["text, SSE (utf8)", "/workspace/text.txt", "utf8", "sse"],
        ["text, binary frames", "/workspace/text.txt", "utf8", "frames"],
        ["random bytes, SSE (base64)", "/workspace/random.bin", "base64", "sse"],
        ["random bytes, binary frames", "/workspace/random.bin", "base64", "frames"],
      ] as const) {
        const [ours, theirs] = await pair(
          async () => {
            const p = "/v1/sessions/xfer/execs";
            const body = JSON.stringify({ argv: ["cat", file], encoding });
            const headers = {
              ...signed("POST", p, body),
              ...(framing === "frames" ? { accept: EXEC_FRAMES_MEDIA_TYPE } : {}),
            };
            const got =
              framing === "sse"
                ? await readSsePayload((onData) => request(`${spawner.url}${p}`, "POST", headers, body, onData))
                : await readFramesPayload(`${spawner.url}${p}`, headers, body);
            if (got !== BYTES) throw new Error(`${name}: spawner delivered ${got} of ${BYTES} bytes`);
          },
          async () => {
            let seen = 0;
            await dockerExec(container, ["cat", file], (n) => {
              seen += n;
            });
            if (seen !== BYTES) throw new Error(`${name}: docker exec delivered ${seen} of ${BYTES} bytes`);
          },
        );
        const a = BYTES / 1e6 / (stats(ours).median / 1000);
        const b = BYTES / 1e6 / (stats(theirs).median / 1000);
        rows.push(`| ${name} | ${a.toFixed(0)} MB/s | ${b.toFixed(0)} MB/s | ${(a / b).toFixed(2)}× |`);
      }
    }
  } finally {
    await spawner.stop();
    agent.destroy();
    await removeDeployment(spawner.deployment);
    await rm(local, { recursive: true, force: true });
  }
  console.log(`transfer benchmark — ${new Date().toISOString()}, Node ${process.version}, ${cpus().length} CPUs`);
  console.log("(alternating order, first round not counted; MB = 10^6 bytes of payload)\n");
  console.log(rows.join("\n"));
}

await main();
