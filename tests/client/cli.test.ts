import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { SessionSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerUnavailable, removeDeployment } from "../support/docker.js";
import { eventually } from "../support/proc.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";
import { type SpawnerHandle, startSpawner } from "../support/spawner.js";

const CLI = fileURLToPath(new URL("../../packages/client/dist/cli/main.js", import.meta.url));
const skip = skipUnlessPlatform("Docker", await dockerUnavailable(), "CLI tests");

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

describe("the sbx command line against a real spawner", skippedBecause(skip), () => {
  let spawner: SpawnerHandle;
  let local: string;
  let id: string;

  /** Runs `sbx args...`; `onStdout` sees output as it arrives (e.g. to interrupt it). */
  function sbx(
    args: string[],
    options: { input?: Buffer | string; onStdout?: (text: string, pid: number) => void } = {},
  ) {
    return new Promise<Run>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, ...args], {
        env: {
          PATH: process.env.PATH ?? "",
          SBX_URL: spawner.url,
          SBX_KEY_ID: spawner.keyId,
          SBX_SECRET: spawner.secret,
        },
        stdio: ["pipe", "pipe", "pipe"],
      });
      const out: Buffer[] = [];
      let err = "";
      child.stdout.on("data", (chunk: Buffer) => {
        out.push(chunk);
        options.onStdout?.(Buffer.concat(out).toString(), child.pid ?? 0);
      });
      child.stderr.on("data", (chunk: Buffer) => {
        err += chunk.toString();
      });
      child.on("error", reject);
      child.on("exit", (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }));
      if (options.input === undefined) child.stdin.end();
      else child.stdin.end(options.input);
    });
  }

  beforeAll(async () => {
    spawner = await startSpawner();
    local = await mkdtemp(path.join(tmpdir(), "sbx-cli-"));
  });
  afterAll(async () => {
    await spawner?.stop();
    if (spawner) await removeDeployment(spawner.deployment);
    if (local) await rm(local, { recursive: true, force: true });
  });

  it("explains itself: --help, every command's --help with an example, exit 2 on misuse", async () => {
    const help = await sbx(["--help"]);
    expect(help.code).toBe(0);
    for (const command of ["create", "ls", "get", "rm", "extend", "exec", "attach", "cp", "env"]) {
      expect(help.stdout.toString()).toContain(`  ${command}`);
      const own = await sbx([command, "--help"]);
      expect(own.code).toBe(0);
      expect(own.stdout.toString()).toMatch(/Usage:[\s\S]*Examples:\n {2}sbx /);
    }
    const misuse = await sbx(["create", "--ttl", "soon"]);
    expect(misuse.code).toBe(2);
    expect(misuse.stderr).toMatch(/not a duration[\s\S]*Usage: sbx create/);
    expect((await sbx(["frobnicate"])).code).toBe(2);
  });

  it("creates, lists, shows and extends a session", async () => {
    const created = await sbx([
      "create",
      "--org",
      "cli",
      "--label",
      "suite=cli",
      "--ttl",
      "1h",
      "--env",
      "GREETING=hello",
    ]);
    expect(created.code).toBe(0);
    id = created.stdout.toString().trim();
    expect(id).toMatch(/^s-[a-z0-9]{12}$/);
    const listed = await sbx(["ls", "--label", "suite=cli"]);
    expect(listed.stdout.toString()).toMatch(new RegExp(`^ID\\s+ORG.*\\n${id}\\s+cli`));
    const json = await sbx(["--json", "ls", "--org", "cli"]);
    expect(JSON.parse(json.stdout.toString()).map((s: { id: string }) => s.id)).toEqual([id]);
    const shown = await sbx(["get", id]);
    expect(shown.stdout.toString()).toMatch(/state:\s+ready/);
    const extended = await sbx(["extend", id, "--ttl", "3h", "--json"]);
    const session = SessionSchema.parse(JSON.parse(extended.stdout.toString()));
    expect(session.expiresAt - Date.now()).toBeGreaterThan(2.9 * 3_600_000);
  });

  it("stops and resumes a session", async () => {
    const stopped = await sbx(["stop", id]);
    expect([stopped.code, stopped.stdout.toString()]).toEqual([0, `${id}  stopped\n`]);
    expect((await sbx(["get", id])).stdout.toString()).toMatch(/state:\s+stopped/);
    const resumed = await sbx(["resume", id]);
    expect([resumed.code, resumed.stdout.toString()]).toEqual([0, `${id}  ready\n`]);
    expect((await sbx(["stop"])).code).toBe(2);
  });

  it("keeps stdout and stderr apart and exits with the remote exit code", async () => {
    const run = await sbx(["exec", id, "--", "sh", "-c", 'echo "out $GREETING"; echo err >&2; exit 7']);
    expect(run.code).toBe(7);
    expect(run.stdout.toString()).toBe("out hello\n");
    expect(run.stderr).toBe("err\n");
    const missing = await sbx(["exec", id, "--", "no-such-command-xyz"]);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toContain("command not found");
    const shell = await sbx(["exec", id, "--shell", "--", "echo $((6*7))"]);
    expect(shell.stdout.toString()).toBe("42\n");
  });

  it("passes bytes through exactly, both ways, including piped stdin", async () => {
    const payload = randomBytes(200_000);
    const echoed = await sbx(["exec", id, "--", "cat"], { input: payload });
    expect(echoed.code).toBe(0);
    expect(echoed.stdout.equals(payload)).toBe(true);
  });

  it("detaches, then attaches to the same command and gets its exit code", async () => {
    const detached = await sbx(["exec", id, "--detach", "--", "sh", "-c", "sleep 0.5; echo later; exit 3"]);
    expect(detached.code).toBe(0);
    const execId = detached.stdout.toString().trim();
    expect(execId).toMatch(/^[0-9a-f]{16}$/);
    const attached = await sbx(["attach", id, execId]);
    expect(attached.stdout.toString()).toBe("later\n");
    expect(attached.code).toBe(3);
    const tail = await sbx(["attach", id, execId, "--after", "2"]);
    expect(tail.stdout.toString()).toBe("");
    expect(tail.code).toBe(3);
  });

  it("copies a directory with binary files in and out, and single files both ways", async () => {
    const source = path.join(local, "project");
    await mkdir(path.join(source, "assets/img"), { recursive: true });
    const binary = randomBytes(1024 * 1024 + 3);
    await writeFile(path.join(source, "assets/img/logo.bin"), binary);
    await writeFile(path.join(source, "README"), "hello\n");
    const up = await sbx(["cp", source, `${id}:project`]);
    expect(up.code).toBe(0);
    expect(up.stdout.toString()).toBe("");
    const sum = await sbx(["exec", id, "--", "sha256sum", "project/assets/img/logo.bin"]);
    expect(sum.code).toBe(0);
    const back = path.join(local, "back");
    const down = await sbx(["cp", `${id}:project`, back]);
    expect(down.code).toBe(0);
    expect((await readFile(path.join(back, "assets/img/logo.bin"))).equals(binary)).toBe(true);
    expect(await readFile(path.join(back, "README"), "utf8")).toBe("hello\n");

    const single = path.join(local, "single.bin");
    await writeFile(single, binary.subarray(0, 5000));
    expect((await sbx(["cp", single, `${id}:files/`])).code).toBe(0);
    const toStdout = await sbx(["cp", `${id}:files/single.bin`, "-"]);
    expect(toStdout.stdout.equals(binary.subarray(0, 5000))).toBe(true);
    const missing = await sbx(["cp", `${id}:files/nope.bin`, "-"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("FILE_NOT_FOUND");
  });

  it("sets and unsets environment variables by name", async () => {
    expect((await sbx(["env", id, "set", "A=1", "B=2"])).stdout.toString()).toBe("A\nB\nGREETING\n");
    expect((await sbx(["env", id, "unset", "A"])).stdout.toString()).toBe("B\nGREETING\n");
    const refused = await sbx(["env", id, "set", "RUNNERD_PORT=1"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("RUNNERD_PORT");
  });

  it("cancels the remote command on Ctrl-C", async () => {
    let interrupted = false;
    const run = await sbx(["exec", id, "--", "sh", "-c", "echo started; exec sleep 300"], {
      onStdout: (text, pid) => {
        if (!interrupted && text.includes("started")) {
          interrupted = true;
          process.kill(pid, "SIGINT");
        }
      },
    });
    expect(interrupted).toBe(true);
    expect(run.code).toBe(130);
    expect(run.stderr).toContain("cancelling the remote command");
    const gone = await eventually(async () => {
      const check = await sbx(["exec", id, "--", "sh", "-c", "pgrep -x sleep || true"]);
      return check.stdout.toString().trim() === "";
    }, 10_000);
    expect(gone).toBe(true);
  });

  it("deletes the session, and says so when it is gone", async () => {
    expect((await sbx(["rm", id])).code).toBe(0);
    const after = await sbx(["get", id]);
    expect(after.code).toBe(1);
    expect(after.stderr).toContain("SESSION_NOT_FOUND");
  });
});
