// Moving bytes in and out of a session against the obvious alternative, in one run on one engine:
//   `sbx cp` of a file and of a directory, up and down   vs   `docker cp` of the same bytes
//   exec output through the spawner (SSE text, SSE base64, binary frames)   vs   `docker exec`
//   per hop (--only hops): a file up and down with curl straight to runnerd and through the
//   spawner, `sbx cp` and `docker cp`; and each command's own start (`--help`)
//
//   node tests/bench/run.mjs transfer-bench [--runs N] [--mib N] [--files N] [--only file,dir,exec,hops]
//
// Needs a Docker engine, the built spawner and CLI (`bun run build`), sbx-runtime:latest and curl.
// Both sides are whole commands (a process each: `sbx` and `docker`), as a user runs them; the
// spawner reaches runnerd by address, its default. Sides alternate which goes first, after one
// unmeasured round each.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { cpus, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs, promisify } from "node:util";
import { EXEC_FRAMES_MEDIA_TYPE, signRequest, UNSIGNED_PAYLOAD } from "@sbx/protocol";
import { runnerdToken } from "@sbx/spawner";
import Docker from "dockerode";
import { inspect, removeDeployment } from "../support/docker.js";
import { startSpawner } from "../support/spawner.js";
import { dockerExec } from "./alternatives.js";
import {
  agent,
  measureAlternating,
  ms,
  readFramesPayload,
  readSsePayload,
  request,
  type Sample,
  stats,
  timed,
  whole,
} from "./measure.js";

const run = promisify(execFile);
const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "10" },
    mib: { type: "string", default: "200" },
    files: { type: "string", default: "2000" },
    only: { type: "string", default: "file,dir,exec,hops" },
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
  const want = (name: string) => values.only.split(",").includes(name);
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
    rows.push(
      `| ${MIB} MiB (median of ${RUNS}) | sbx cp | docker cp | sbx cp vs docker cp (throughput) |`,
      "|---|---|---|---|",
    );
    const row = (name: string, ours: number[], theirs: number[]) => {
      const o = stats(ours).median;
      const t = stats(theirs).median;
      rows.push(`| ${name} | ${(o / 1000).toFixed(2)} s | ${(t / 1000).toFixed(2)} s | ${(t / o).toFixed(2)}× |`);
    };
    /** Samples of each side, `runs` times, alternating which goes first, one round before not counted. */
    const pair = async (ours: Sample, theirs: Sample) => {
      const [a = [], b = []] = await measureAlternating([ours, theirs], { runs: RUNS, warmup: 1 });
      return [a, b] as const;
    };
    if (want("file")) {
      const [upOurs, upTheirs] = await pair(
        whole(() => sbx("cp", file, "xfer:up.bin")),
        whole(() => run("docker", ["cp", file, `${cname}:/workspace/up-docker.bin`])),
      );
      row("file up", upOurs, upTheirs);
      const down = path.join(local, "down.bin");
      const [downOurs, downTheirs] = await pair(
        whole(() => sbx("cp", "xfer:up.bin", down)),
        whole(() => run("docker", ["cp", `${cname}:/workspace/up-docker.bin`, `${down}.docker`])),
      );
      row("file down", downOurs, downTheirs);
    }
    if (want("dir")) {
      // A directory copied onto one that exists lands inside it, so every upload goes to a new
      // directory on both sides: the same operation, with nothing removed in between. (Removing
      // would need different users: `docker cp` writes root's files, which the session's user
      // cannot remove, and root in a session has no capability to remove the user's.)
      const uploads = { sbx: 0, docker: 0 };
      const [upOurs, upTheirs] = await pair(
        whole(() => sbx("cp", tree, `xfer:tree-${uploads.sbx++}`)),
        whole(() => run("docker", ["cp", tree, `${cname}:/workspace/tree-docker-${uploads.docker++}`])),
      );
      row(`directory up (${FILES} files)`, upOurs, upTheirs);
      // Downloads (of each side's first upload) go to the same local directory each run; both sides
      // remove theirs the same way (fs.rm), before their clock starts.
      const [downOurs, downTheirs] = await pair(
        async () => {
          await rm(path.join(local, "tree-down"), { recursive: true, force: true });
          return timed(() => sbx("cp", "xfer:tree-0", path.join(local, "tree-down")));
        },
        async () => {
          await rm(path.join(local, "tree-down-docker"), { recursive: true, force: true });
          return timed(() =>
            run("docker", ["cp", `${cname}:/workspace/tree-docker-0`, path.join(local, "tree-down-docker")]),
          );
        },
      );
      row(`directory down (${FILES} files)`, downOurs, downTheirs);
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
          whole(async () => {
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
          }),
          whole(async () => {
            let seen = 0;
            await dockerExec(container, ["cat", file], (n) => {
              seen += n;
            });
            if (seen !== BYTES) throw new Error(`${name}: docker exec delivered ${seen} of ${BYTES} bytes`);
          }),
        );
        const a = BYTES / 1e6 / (stats(ours).median / 1000);
        const b = BYTES / 1e6 / (stats(theirs).median / 1000);
        rows.push(`| ${name} | ${a.toFixed(0)} MB/s | ${b.toFixed(0)} MB/s | ${(a / b).toFixed(2)}× |`);
      }
    }

    if (want("hops")) {
      // Where an `sbx cp` of one file spends its time, hop by hop: curl (one process, like
      // `docker`) straight to runnerd at the container's address with the session's token; curl
      // through the spawner, signed (the body streamed as UNSIGNED-PAYLOAD, as `sbx` sends it);
      // `sbx cp` itself; and `docker cp`. Each writes its own file.
      const ip = Object.values((await inspect(cname)).NetworkSettings.Networks)[0]?.IPAddress ?? "";
      const token = runnerdToken(spawner.runnerdSecret, "xfer");
      const direct = (name: string) => `http://${ip}:7070/v1/files/content?path=${name}`;
      const viaSpawner = (method: string, name: string) => {
        const p = `/v1/sessions/xfer/files/content?path=${name}`;
        const headers = signRequest({
          keyId: spawner.keyId,
          secret: spawner.secret,
          method,
          pathWithQuery: p,
          body: method === "PUT" ? UNSIGNED_PAYLOAD : undefined,
        });
        return [`${spawner.url}${p}`, ...Object.entries(headers).flatMap(([k, v]) => ["-H", `${k}: ${v}`])];
      };
      const curl = (...args: string[]) => run("curl", ["-sSf", "-o", "/dev/null", ...args]);
      const curlDown = (out: string, ...args: string[]) => run("curl", ["-sSf", "-o", out, ...args]);
      const auth = ["-H", `authorization: Bearer ${token}`];
      const ways = ["curl → runnerd", "curl → spawner → runnerd", "sbx cp", "docker cp"];
      const hop = (direction: string, samples: number[][]) => {
        const medians = samples.map((list) => stats(list).median);
        const cells = medians.map((m) => `${(m / 1000).toFixed(2)} s`);
        const base = medians[3] ?? Number.NaN;
        rows.push(
          `| ${direction} | ${cells.join(" | ")} | ${medians.map((m) => `${(base / m).toFixed(2)}×`).join(" / ")} |`,
        );
      };
      rows.push(
        "",
        `| ${MIB} MiB file, per hop (median of ${RUNS}) | ${ways.join(" | ")} | throughput vs docker cp, each |`,
        "|---|---|---|---|---|---|",
      );
      hop(
        "up",
        await measureAlternating(
          [
            whole(() => curl("-T", file, ...auth, direct("hop-direct.bin"))),
            whole(() => curl("-T", file, ...viaSpawner("PUT", "hop-spawner.bin"))),
            whole(() => sbx("cp", file, "xfer:hop-sbx.bin")),
            whole(() => run("docker", ["cp", file, `${cname}:/workspace/hop-docker.bin`])),
          ],
          { runs: RUNS, warmup: 1 },
        ),
      );
      const out = (name: string) => path.join(local, name);
      hop(
        "down",
        await measureAlternating(
          [
            whole(() => curlDown(out("hop-direct.bin"), ...auth, direct("hop-direct.bin"))),
            whole(() => curlDown(out("hop-spawner.bin"), ...viaSpawner("GET", "hop-spawner.bin"))),
            whole(() => sbx("cp", "xfer:hop-sbx.bin", out("hop-sbx.bin"))),
            whole(() => run("docker", ["cp", `${cname}:/workspace/hop-docker.bin`, out("hop-docker.bin")])),
          ],
          { runs: RUNS, warmup: 1 },
        ),
      );
      // What each command costs before it moves a byte: a process that prints its help and exits.
      const [sbxStart = [], dockerStart = []] = await pair(
        whole(() => sbx("--help")),
        whole(() => run("docker", ["--help"])),
      );
      const a = stats(sbxStart).median;
      const b = stats(dockerStart).median;
      rows.push(
        "",
        `| command start, \`--help\` (median of ${RUNS}) | sbx | docker | sbx vs docker (time) |`,
        "|---|---|---|---|",
        `| print help and exit | ${ms(a)} | ${ms(b)} | ${(a / b).toFixed(2)}× |`,
      );
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
