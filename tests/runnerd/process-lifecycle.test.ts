import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { eventually, isAlive } from "../support/proc.js";
import { RUNNERD_BUNDLE, startRunnerd } from "../support/runnerd.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";
import { exitOf, readEvents, textOf } from "../support/sse.js";

const TINI = ["/usr/bin/tini", "/sbin/tini"].find((p) => existsSync(p));

/** Why a fresh PID namespace cannot be made here, or undefined when it can. */
function namespaceUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root to create a PID namespace (unshare --pid)";
  if (!TINI) return "needs tini (apt-get install tini)";
  try {
    execFileSync("unshare", ["--pid", "--fork", "--mount-proc", "true"], { stdio: "ignore" });
  } catch (error) {
    return `unshare --pid failed here: ${error instanceof Error ? error.message : String(error)}`;
  }
  return undefined;
}
const skipReason = skipUnlessPlatform(
  "a fresh PID namespace (root, unshare, tini)",
  namespaceUnavailable(),
  "PID-namespace tests",
);

describe("shutdown", () => {
  it("stops every exec's processes on SIGTERM and exits cleanly within the grace", async () => {
    const runnerd = await startRunnerd({ env: { RUNNERD_SHUTDOWN_GRACE_MS: "1000" } });
    const response = await runnerd.request("/v1/execs", {
      method: "POST",
      body: JSON.stringify({
        shell: "(setsid sh -c 'echo $$ > gc.pid; trap \"\" TERM; exec sleep 300' &); trap '' TERM; sleep 300",
      }),
    });
    const { events } = await readEvents(response, (e) => e.type === "started");
    const started = events[0];
    if (started?.type !== "started") throw new Error("no started event");
    let grandchild = 0;
    const written = await eventually(async () => {
      grandchild = Number((await readFile(path.join(runnerd.root, "gc.pid"), "utf8").catch(() => "")).trim());
      return grandchild > 1;
    });
    // Without these, a grandchild never found (pid 0) would pass as "not alive" below.
    expect(written, "the grandchild wrote its pid to gc.pid").toBe(true);
    expect(isAlive(grandchild), `grandchild ${grandchild} runs before the stop`).toBe(true);
    expect(isAlive(started.data.pid), "the exec's shell runs before the stop").toBe(true);
    const before = Date.now();
    const result = await runnerd.stop();
    expect(result).toEqual({ code: 0, signal: null });
    // Both ignore SIGTERM, so this also proves the SIGKILL after the grace.
    expect(Date.now() - before).toBeLessThan(5000);
    expect(isAlive(started.data.pid)).toBe(false);
    expect(await eventually(() => !isAlive(grandchild), 2000)).toBe(true);
    expect(runnerd.logs()).toContain('"msg":"stopped"');
  });

  it("runs from a lone copy of the bundle, with no node_modules anywhere above it", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "runnerd-lone-"));
    try {
      const bundle = path.join(dir, "runnerd.mjs");
      await copyFile(RUNNERD_BUNDLE, bundle);
      const runnerd = await startRunnerd({ bundle });
      try {
        const response = await runnerd.json("POST", "/v1/execs?wait=true", { argv: ["echo", "alone"] });
        expect(response.body).toMatchObject({ stdout: "alone\n", outcome: "completed" });
      } finally {
        await runnerd.stop();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("exits with a message naming the variable when the configuration is invalid", async () => {
    await expect(startRunnerd({ env: { RUNNERD_PORT: "seventy" } })).rejects.toThrow(/RUNNERD_PORT/);
    await expect(startRunnerd({ env: { RUNNERD_TOKEN_SHA256: "short" } })).rejects.toThrow(/RUNNERD_TOKEN_SHA256/);
  });
});

describe("in a fresh PID namespace", skippedBecause(skipReason), () => {
  const namespace = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM"];

  it("leaves no zombie behind under tini, however the execs fork", async () => {
    const runnerd = await startRunnerd({ wrap: [...namespace, TINI ?? "tini", "--"] });
    try {
      const run = async (shell: string) =>
        readEvents(await runnerd.request("/v1/execs", { method: "POST", body: JSON.stringify({ shell }) }));
      const init = await run("cat /proc/1/comm");
      expect(textOf(init.events).trim()).toBe("tini");
      // Orphans of double forks are re-parented to PID 1, which must reap them.
      const forks = await run("for i in $(seq 1 25); do (sh -c 'sleep 0.05' &); (setsid true &); done; sleep 0.5");
      expect(exitOf(forks.events).outcome).toBe("completed");
      const states = await run("sleep 0.3; for f in /proc/[0-9]*/stat; do cut -d' ' -f3 $f; done 2>/dev/null");
      const zombies = textOf(states.events)
        .split("\n")
        .filter((state) => state === "Z");
      expect(zombies).toEqual([]);
    } finally {
      await runnerd.stop();
    }
  });

  it("warns when started as PID 1 without an init", async () => {
    const runnerd = await startRunnerd({ wrap: namespace });
    try {
      expect(runnerd.logs()).toContain("runnerd is PID 1 without an init");
    } finally {
      await runnerd.stop();
    }
  });
});
