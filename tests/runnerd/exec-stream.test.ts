import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { ExecInfoSchema, ExecListResponseSchema, ExecResultSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunnerdHandle, startRunnerd } from "../support/runnerd.js";
import { bytesOf, exitOf, readEvents, textOf } from "../support/sse.js";

let runnerd: RunnerdHandle;

beforeAll(async () => {
  runnerd = await startRunnerd();
});
afterAll(async () => {
  await runnerd?.stop();
});

const exec = (body: unknown, query = "") =>
  runnerd.request(`/v1/execs${query}`, { method: "POST", body: JSON.stringify(body) });

describe("exec event stream", () => {
  it("streams started, stdout, stderr and exit with consecutive ids", async () => {
    const response = await exec({ shell: "echo out; echo err >&2; exit 3", tag: "demo" });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const execId = response.headers.get("x-exec-id");
    const { events, end } = await readEvents(response);
    expect(end).toBe("closed");
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const started = events[0];
    expect(started?.type).toBe("started");
    if (started?.type === "started") {
      expect(started.data.execId).toBe(execId);
      expect(started.data.pid).toBeGreaterThan(0);
    }
    expect(textOf(events, "stdout")).toBe("out\n");
    expect(textOf(events, "stderr")).toBe("err\n");
    expect(exitOf(events)).toMatchObject({ exitCode: 3, signal: null, outcome: "failed", truncated: false });
  });

  it("reports exit 0 as completed and runs argv without a shell", async () => {
    const { events } = await readEvents(await exec({ argv: ["printf", "%s|", "a b", "$HOME"] }));
    expect(textOf(events)).toBe("a b|$HOME|");
    expect(exitOf(events).outcome).toBe("completed");
  });

  it("delivers binary output byte for byte in base64 mode", async () => {
    const payload = randomBytes(3 * 1024 * 1024 + 17);
    const file = path.join(runnerd.root, "random.bin");
    await writeFile(file, payload);
    const { events } = await readEvents(await exec({ argv: ["cat", file], encoding: "base64" }));
    expect(exitOf(events).outcome).toBe("completed");
    expect(bytesOf(events).equals(payload)).toBe(true);
  });

  it("never splits a multi-byte character across events", async () => {
    // Each write ends in the middle of a character; the pause makes the reads land apart.
    const script = String.raw`printf '\xe2\x82'; sleep 0.2; printf '\xac|\xf0\x9f'; sleep 0.2; printf '\x98\x80|\xc3'; sleep 0.2; printf '\xa9'`;
    const { events } = await readEvents(await exec({ shell: script }));
    const outputs = events.filter((e) => e.type === "stdout");
    expect(outputs.length).toBeGreaterThan(1);
    for (const event of outputs) {
      if ("text" in event.data) expect(event.data.text).not.toContain("\uFFFD");
    }
    expect(textOf(events)).toBe("€|😀|é");
  });

  it("fails a command that does not exist with an exit event carrying the reason", async () => {
    const response = await exec({ argv: ["definitely-not-a-command-xyz"] });
    const { events } = await readEvents(response);
    expect(events).toHaveLength(1);
    const exit = exitOf(events);
    expect(exit.outcome).toBe("failed");
    expect(exit.exitCode).toBeNull();
    expect(exit.error?.code).toBe("COMMAND_NOT_FOUND");
  });

  it("runs in the requested cwd and refuses one that does not exist", async () => {
    await runnerd.json("POST", "/v1/files/mkdir", { path: "sub/dir" });
    const { events } = await readEvents(await exec({ argv: ["pwd"], cwd: "sub/dir" }));
    expect(textOf(events).trim()).toMatch(/sub\/dir$/);
    const missing = await runnerd.json("POST", "/v1/execs", { argv: ["pwd"], cwd: "nope" });
    expect(missing.status).toBe(400);
    expect(missing.body).toMatchObject({ error: { code: "INVALID_CWD" } });
  });

  it("answers ?wait=true with one JSON result", async () => {
    const response = await exec({ shell: "echo hello; echo oops >&2; exit 1" }, "?wait=true");
    expect(response.status).toBe(200);
    const result = ExecResultSchema.parse(await response.json());
    expect(result).toMatchObject({ stdout: "hello\n", stderr: "oops\n", exitCode: 1, outcome: "failed" });
    expect(result.truncated).toBe(false);
  });

  it("keeps the newest output when ?wait=true output exceeds the cap", async () => {
    const small = await startRunnerd({ env: { RUNNERD_WAIT_OUTPUT_BYTES: "1024" } });
    try {
      const response = await small.request("/v1/execs?wait=true", {
        method: "POST",
        body: JSON.stringify({ shell: "seq 1 2000" }),
      });
      const result = ExecResultSchema.parse(await response.json());
      expect(result.truncated).toBe(true);
      expect(Buffer.byteLength(result.stdout)).toBeLessThanOrEqual(1024);
      expect(result.stdout.endsWith("1999\n2000\n")).toBe(true);
    } finally {
      await small.stop();
    }
  });

  it("lists execs, filters by tag and state, and forgets finished ones", async () => {
    const id = `list-${Date.now()}`;
    await readEvents(await exec({ execId: id, argv: ["true"], tag: "listing" }));
    const list = ExecListResponseSchema.parse((await runnerd.json("GET", "/v1/execs?tag=listing")).body);
    expect(list.execs.map((e) => e.execId)).toEqual([id]);
    const info = ExecInfoSchema.parse((await runnerd.json("GET", `/v1/execs/${id}`)).body);
    expect(info).toMatchObject({ state: "exited", outcome: "completed", exitCode: 0, tag: "listing" });
    const running = ExecListResponseSchema.parse(
      (await runnerd.json("GET", "/v1/execs?state=running&tag=listing")).body,
    );
    expect(running.execs).toEqual([]);
    expect((await runnerd.json("DELETE", `/v1/execs/${id}`)).status).toBe(204);
    const gone = await runnerd.json("GET", `/v1/execs/${id}`);
    expect(gone.status).toBe(404);
    expect(gone.body).toMatchObject({ error: { code: "EXEC_NOT_FOUND" } });
  });

  it("refuses a duplicate live execId and forgetting a running exec, but reuses a finished id", async () => {
    const id = `dup-${Date.now()}`;
    const first = await exec({ execId: id, argv: ["sleep", "30"] });
    const reader = readEvents(first, (e) => e.type === "started");
    await reader;
    const second = await runnerd.json("POST", "/v1/execs", { execId: id, argv: ["true"] });
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({ error: { code: "EXEC_EXISTS" } });
    const forget = await runnerd.json("DELETE", `/v1/execs/${id}`);
    expect(forget.status).toBe(409);
    expect(forget.body).toMatchObject({ error: { code: "EXEC_RUNNING" } });
    expect((await runnerd.json("POST", `/v1/execs/${id}/cancel`, { signal: "SIGKILL" })).status).toBe(202);
    const final = await readEvents(await runnerd.request(`/v1/execs/${id}/events`));
    expect(exitOf(final.events).outcome).toBe("cancelled");
    const again = await readEvents(await exec({ execId: id, argv: ["echo", "second"] }));
    expect(textOf(again.events)).toBe("second\n");
  });
});

describe("exec environment", () => {
  it("builds exec environments from a clean base without runnerd's configuration", async () => {
    const { events } = await readEvents(await exec({ argv: ["env"], env: { EXTRA: "1" } }));
    const names = textOf(events)
      .trim()
      .split("\n")
      .map((line) => line.split("=")[0]);
    expect(names).toContain("PATH");
    expect(names).toContain("HOME");
    expect(names).toContain("EXTRA");
    expect(names.filter((n) => n?.startsWith("RUNNERD_"))).toEqual([]);
    expect(textOf(events)).not.toContain(runnerd.token);
  });

  it("applies PATCH /v1/env to later execs, never echoes values, and denies reserved names", async () => {
    const patch = await runnerd.json("PATCH", "/v1/env", {
      set: { API_KEY: "s3cr3t-value", RUNNERD_PORT: "1", SBX_EXEC: "x" },
    });
    expect(patch.status).toBe(200);
    expect(patch.body).toEqual({ names: ["API_KEY"], denied: ["RUNNERD_PORT", "SBX_EXEC"] });
    expect(JSON.stringify((await runnerd.json("GET", "/v1/env")).body)).not.toContain("s3cr3t-value");
    const { events } = await readEvents(await exec({ shell: 'printf %s "$API_KEY"' }));
    expect(textOf(events)).toBe("s3cr3t-value");
    const overlay = await readEvents(await exec({ shell: 'printf %s "$API_KEY"', env: { API_KEY: "override" } }));
    expect(textOf(overlay.events)).toBe("override");
    const unset = await runnerd.json("PATCH", "/v1/env", { unset: ["API_KEY"] });
    expect(unset.body).toEqual({ names: [], denied: [] });
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, not a template.
    const after = await readEvents(await exec({ shell: 'printf %s "${API_KEY-unset}"' }));
    expect(textOf(after.events)).toBe("unset");
    expect(runnerd.logs()).not.toContain("s3cr3t-value");
  });

  it("refuses reserved names in an exec's env overlay", async () => {
    const response = await runnerd.json("POST", "/v1/execs", { argv: ["true"], env: { RUNNERD_ROOT: "/" } });
    expect(response.status).toBe(400);
    expect(response.body).toMatchObject({
      error: { code: "VALIDATION_FAILED", details: { issues: [{ path: "env.RUNNERD_ROOT" }] } },
    });
  });
});
