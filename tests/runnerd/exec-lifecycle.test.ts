import { readFile } from "node:fs/promises";
import path from "node:path";
import { CancelResponseSchema, ExecInfoSchema, StdinWriteResponseSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually, isAlive, sleep } from "../support/proc.js";
import { type RunnerdHandle, startRunnerd } from "../support/runnerd.js";
import { exitOf, readEvents, textOf } from "../support/sse.js";

let runnerd: RunnerdHandle;

beforeAll(async () => {
  runnerd = await startRunnerd({ env: { RUNNERD_ORPHAN_TIMEOUT_MS: "1000", RUNNERD_KILL_GRACE_MS: "500" } });
});
afterAll(async () => {
  await runnerd?.stop();
});

const start = (body: unknown) => runnerd.request("/v1/execs", { method: "POST", body: JSON.stringify(body) });
const info = async (execId: string) => ExecInfoSchema.parse((await runnerd.json("GET", `/v1/execs/${execId}`)).body);
const untilStarted = async (body: unknown) => {
  const { events } = await readEvents(await start(body), (e) => e.type === "started");
  const started = events[0];
  if (started?.type !== "started") throw new Error("no started event");
  return started.data.pid;
};
const readPid = async (file: string) => {
  let text = "";
  await eventually(async () => {
    text = await readFile(path.join(runnerd.root, file), "utf8").catch(() => "");
    return text.trim() !== "";
  });
  return Number(text.trim());
};

describe("orphan deadline", () => {
  it("keeps running after the client drops, then reaps the exec as orphaned once nobody re-attaches", async () => {
    const execId = `orphan-${Date.now()}`;
    const pid = await untilStarted({ execId, argv: ["sleep", "60"] });
    await sleep(300);
    expect((await info(execId)).state).toBe("running");
    expect(isAlive(pid)).toBe(true);
    expect(await eventually(async () => (await info(execId)).state === "exited", 5000)).toBe(true);
    expect((await info(execId)).outcome).toBe("orphaned");
    expect(isAlive(pid)).toBe(false);
  });

  it("is re-armed by every attach and runs unbounded while someone is attached", async () => {
    const execId = `rearm-${Date.now()}`;
    await untilStarted({ execId, shell: "for i in $(seq 1 30); do echo $i; sleep 0.1; done" });
    await sleep(700);
    // Attached for longer than the 1 s window: the exec must not be reaped.
    const attached = await readEvents(await runnerd.request(`/v1/execs/${execId}/events?after=1`));
    expect(exitOf(attached.events).outcome).toBe("completed");
    expect(textOf(attached.events).trim().split("\n")).toHaveLength(30);
  });

  it("honours a per-exec orphanTimeoutMs", async () => {
    const execId = `longorphan-${Date.now()}`;
    await untilStarted({ execId, argv: ["sleep", "2"], orphanTimeoutMs: 10_000 });
    await sleep(1600);
    expect((await info(execId)).state).toBe("running");
    expect(await eventually(async () => (await info(execId)).outcome === "completed", 5000)).toBe(true);
  });
});

describe("hard timeout and cancel", () => {
  it("ends an exec at timeoutMs with outcome timeout, even while a client is attached", async () => {
    const { events } = await readEvents(await start({ argv: ["sleep", "30"], timeoutMs: 300 }));
    const exit = exitOf(events);
    expect(exit).toMatchObject({ outcome: "timeout", signal: "SIGTERM" });
    expect(exit.durationMs).toBeLessThan(5000);
  });

  it("reports completed when the process exits 0 on its own terms after a timeout signal", async () => {
    // The deadline leaves the shell time to set its trap even on a loaded machine: a SIGTERM
    // before the trap would (rightly) end the shell as a timeout.
    const { events } = await readEvents(
      await start({ shell: "trap 'echo bye; exit 0' TERM; sleep 30 & wait", timeoutMs: 2000 }),
    );
    expect(exitOf(events)).toMatchObject({ outcome: "completed", exitCode: 0 });
    expect(textOf(events)).toBe("bye\n");
  });

  it("cancel kills the whole tree, including a setsid grandchild that left the group", async () => {
    const execId = `tree-${Date.now()}`;
    const pid = await untilStarted({
      execId,
      shell: "(setsid sh -c 'echo $$ > tree-grandchild.pid; exec sleep 300' &); sleep 300",
    });
    const grandchild = await readPid("tree-grandchild.pid");
    expect(isAlive(grandchild)).toBe(true);
    const cancel = await runnerd.json("POST", `/v1/execs/${execId}/cancel`, {});
    expect(cancel.status).toBe(202);
    expect(CancelResponseSchema.parse(cancel.body).signalled).toBeGreaterThanOrEqual(2);
    const { events } = await readEvents(await runnerd.request(`/v1/execs/${execId}/events`));
    expect(exitOf(events).outcome).toBe("cancelled");
    expect(await eventually(() => !isAlive(grandchild) && !isAlive(pid), 3000)).toBe(true);
  });

  it("sends SIGKILL after the grace period to a process that ignores the signal", async () => {
    const execId = `stubborn-${Date.now()}`;
    // Cancel only once the trap is set: a SIGTERM before it would (rightly) end the shell at once.
    await readEvents(
      await start({ execId, argv: ["sh", "-c", "trap '' TERM; echo armed; while :; do sleep 0.05; done"] }),
      (e) => e.type === "stdout",
    );
    const started = Date.now();
    await runnerd.json("POST", `/v1/execs/${execId}/cancel`, { signal: "SIGTERM", graceMs: 300 });
    const { events } = await readEvents(await runnerd.request(`/v1/execs/${execId}/events`));
    expect(exitOf(events)).toMatchObject({ outcome: "cancelled", signal: "SIGKILL" });
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
  });

  it("lets background processes outlive their exec until the exec is cancelled", async () => {
    const execId = `background-${Date.now()}`;
    const { events } = await readEvents(await start({ execId, shell: "sleep 300 & echo $! > bg.pid" }));
    expect(exitOf(events).outcome).toBe("completed");
    const bg = await readPid("bg.pid");
    expect(isAlive(bg)).toBe(true);
    const cancel = await runnerd.json("POST", `/v1/execs/${execId}/cancel`, { signal: "SIGKILL" });
    expect(cancel.body).toMatchObject({ state: "exited", signalled: 1 });
    expect(await eventually(() => !isAlive(bg), 3000)).toBe(true);
  });

  it("answers cancel of an unknown exec with 404 and a bad signal with 400", async () => {
    expect((await runnerd.json("POST", "/v1/execs/nope/cancel", {})).status).toBe(404);
    const bad = await runnerd.json("POST", "/v1/execs/nope/cancel", { signal: "SIGSTOP" });
    expect(bad.status).toBe(400);
  });
});

describe("stdin", () => {
  it("writes initial stdin and closes it", async () => {
    const { events } = await readEvents(await start({ argv: ["cat"], stdin: { text: "hello\n" } }));
    expect(textOf(events)).toBe("hello\n");
  });

  it("passes binary stdin from base64", async () => {
    const bytes = Buffer.from([0, 1, 2, 255, 254, 10]);
    const { events } = await readEvents(
      await start({ argv: ["od", "-An", "-tx1"], stdin: { data: bytes.toString("base64") } }),
    );
    expect(textOf(events).trim()).toBe("00 01 02 ff fe 0a");
  });

  it("holds stdin open for writes in pieces, then closes it on eof", async () => {
    const execId = `stdin-${Date.now()}`;
    const stream = readEvents(await start({ execId, argv: ["cat"], stdin: { mode: "hold" } }));
    const write = (body: unknown) => runnerd.json("POST", `/v1/execs/${execId}/stdin`, body);
    const first = await write({ text: "one " });
    expect(StdinWriteResponseSchema.parse(first.body)).toEqual({ written: 4, closed: false, received: 4 });
    expect((await write({ data: Buffer.from("two ").toString("base64") })).status).toBe(200);
    expect((await write({ text: "three", eof: true })).body).toEqual({ written: 5, closed: true, received: 13 });
    const closed = await write({ text: "four" });
    expect(closed.status).toBe(409);
    const { events } = await stream;
    expect(textOf(events)).toBe("one two three");
    expect(exitOf(events).outcome).toBe("completed");
    const late = await write({ text: "x" });
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({ error: { code: "EXEC_NOT_RUNNING" } });
  });

  it("takes a write with an offset once: a retry skips what was received, a write past it is refused", async () => {
    const execId = `offset-${Date.now()}`;
    const stream = readEvents(await start({ execId, argv: ["cat"], stdin: { mode: "hold", text: "ab" } }));
    const write = (body: unknown) => runnerd.json("POST", `/v1/execs/${execId}/stdin`, body);
    expect((await write({ text: "cd", offset: 2 })).body).toEqual({ written: 2, closed: false, received: 4 });
    // The same write again (a retry after a lost answer), and one overlapping it: only what is new goes in.
    expect((await write({ text: "cd", offset: 2 })).body).toEqual({ written: 0, closed: false, received: 4 });
    expect((await write({ text: "cdef", offset: 2 })).body).toEqual({ written: 2, closed: false, received: 6 });
    const ahead = await write({ text: "zz", offset: 9 });
    expect([ahead.status, ahead.body]).toMatchObject([
      409,
      { error: { code: "CURSOR_AHEAD", details: { received: 6 } } },
    ]);
    expect((await write({ eof: true, offset: 6 })).body).toEqual({ written: 0, closed: true, received: 6 });
    // Closing again with the offset is the same close, not an error.
    expect((await write({ eof: true, offset: 6 })).status).toBe(200);
    const { events } = await stream;
    expect(textOf(events)).toBe("abcdef");
  });

  it("refuses writes to an exec started without stdin", async () => {
    const execId = `nostdin-${Date.now()}`;
    await untilStarted({ execId, argv: ["sleep", "5"] });
    const response = await runnerd.json("POST", `/v1/execs/${execId}/stdin`, { text: "x" });
    expect(response.status).toBe(409);
    expect(response.body).toMatchObject({ error: { code: "STDIN_CLOSED" } });
    await runnerd.json("POST", `/v1/execs/${execId}/cancel`, { signal: "SIGKILL" });
  });
});

describe("limits", () => {
  it("refuses execs beyond RUNNERD_MAX_EXECS with 429 and Retry-After", async () => {
    const small = await startRunnerd({ env: { RUNNERD_MAX_EXECS: "2" } });
    try {
      for (const id of ["a", "b"]) {
        const { events } = await readEvents(
          await small.request("/v1/execs", {
            method: "POST",
            body: JSON.stringify({ execId: id, argv: ["sleep", "30"] }),
          }),
          (e) => e.type === "started",
        );
        expect(events).toHaveLength(1);
      }
      const third = await small.request("/v1/execs", { method: "POST", body: JSON.stringify({ argv: ["true"] }) });
      expect(third.status).toBe(429);
      expect(third.headers.get("retry-after")).toBe("1");
      expect(await third.json()).toMatchObject({ error: { code: "TOO_MANY_EXECS" } });
    } finally {
      await small.stop();
    }
  });
});
