import type { ExecEvent } from "@sbx/protocol";
import { ExecInfoSchema, ExecResultSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunnerdHandle, startRunnerd } from "../support/runnerd.js";
import { exitOf, readEvents, textOf } from "../support/sse.js";

let runnerd: RunnerdHandle;

beforeAll(async () => {
  // A small ring makes eviction easy to provoke.
  runnerd = await startRunnerd({
    env: {
      RUNNERD_RING_BYTES: String(64 * 1024),
      RUNNERD_CONSUMER_BUFFER_BYTES: String(256 * 1024),
      RUNNERD_HEARTBEAT_MS: "200",
    },
  });
});
afterAll(async () => {
  await runnerd?.stop();
});

const start = (body: unknown) => runnerd.request("/v1/execs", { method: "POST", body: JSON.stringify(body) });
const attach = (execId: string, headers: Record<string, string> = {}, query = "") =>
  runnerd.request(`/v1/execs/${execId}/events${query}`, { headers });

/** Numbered lines, one every `ms`, so a reader can check for loss and duplicates. */
const ticker = (count: number, ms: number) => `for i in $(seq 1 ${count}); do echo "line $i"; sleep ${ms / 1000}; done`;

function expectLines(text: string, count: number) {
  expect(text.trim().split("\n")).toEqual(Array.from({ length: count }, (_, i) => `line ${i + 1}`));
}

describe("re-attach and replay", () => {
  it("resumes with Last-Event-ID after a dropped connection with no loss and no duplicates", async () => {
    const execId = `resume-${Date.now()}`;
    const first = await readEvents(await start({ execId, shell: ticker(30, 20) }), (e) => e.seq >= 5);
    expect(first.end).toBe("stopped");
    const lastId = first.events.at(-1)?.seq ?? 0;
    // While nobody is attached the exec keeps running and its output keeps being recorded.
    await new Promise((r) => setTimeout(r, 150));
    const second = await readEvents(await attach(execId, { "Last-Event-ID": String(lastId) }));
    expect(second.end).toBe("closed");
    expect(second.events[0]?.seq).toBe(lastId + 1);
    const all = [...first.events, ...second.events];
    expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
    expectLines(textOf(all), 30);
    expect(exitOf(all).outcome).toBe("completed");
  });

  it("lets ?after= choose the replay point, and Last-Event-ID win over it", async () => {
    const execId = `after-${Date.now()}`;
    const all = await readEvents(await start({ execId, shell: "for i in 1 2 3; do echo $i; sleep 0.05; done" }));
    const lastSeq = all.events.at(-1)?.seq ?? 0;
    expect(lastSeq).toBeGreaterThanOrEqual(4);
    const fromQuery = await readEvents(await attach(execId, {}, "?after=1"));
    expect(fromQuery.events).toEqual(all.events.slice(1));
    const fromHeader = await readEvents(await attach(execId, { "Last-Event-ID": String(lastSeq - 1) }, "?after=1"));
    expect(fromHeader.events).toEqual(all.events.slice(-1));
  });

  it("reports evicted events as one exact gap and never skips silently", async () => {
    const execId = `gap-${Date.now()}`;
    // About 1 MiB of numbered lines through a 64 KiB ring; ?wait=true collects it all without the ring.
    const waited = await runnerd.json("POST", "/v1/execs?wait=true", { execId, shell: "seq 1 150000" });
    const full = ExecResultSchema.parse(waited.body).stdout;
    const replay = await readEvents(await attach(execId));
    const gap = replay.events[0];
    expect(gap?.type).toBe("gap");
    if (gap?.type !== "gap") return;
    expect(gap.data.fromSeq).toBe(1);
    expect(gap.seq).toBe(gap.data.toSeq);
    const rest = replay.events.slice(1);
    expect(rest[0]?.seq).toBe(gap.data.toSeq + 1);
    expect(rest.map((e) => e.seq)).toEqual(rest.map((_, i) => gap.data.toSeq + 1 + i));
    // What is replayed is exactly the tail of the output, starting at an event boundary.
    expect(full.endsWith(textOf(rest))).toBe(true);
    expect(textOf(rest).endsWith("149999\n150000\n")).toBe(true);
    expect(exitOf(rest).truncated).toBe(true);
  });

  it("replays what is retained and stops with ?follow=false", async () => {
    const execId = `nofollow-${Date.now()}`;
    const first = await readEvents(await start({ execId, shell: "echo one; sleep 30" }), (e) => e.type === "stdout");
    const replay = await readEvents(await attach(execId, {}, "?follow=false"));
    expect(replay.end).toBe("closed");
    expect(replay.events.map((e) => e.type)).toEqual(["started", "stdout"]);
    expect(first.events).toEqual(replay.events);
    await runnerd.json("POST", `/v1/execs/${execId}/cancel`, { signal: "SIGKILL" });
  });

  it("refuses a cursor beyond the newest event", async () => {
    const execId = `ahead-${Date.now()}`;
    await readEvents(await start({ execId, argv: ["true"] }));
    const response = await runnerd.json("GET", `/v1/execs/${execId}/events?after=99`);
    expect(response.status).toBe(409);
    expect(response.body).toMatchObject({ error: { code: "CURSOR_AHEAD", details: { lastSeq: 2 } } });
    const bad = await attach(execId, { "Last-Event-ID": "abc" });
    expect(bad.status).toBe(400);
  });

  it("serves several consumers of one exec the same events", async () => {
    const execId = `multi-${Date.now()}`;
    const a = readEvents(await start({ execId, shell: `sleep 0.3; ${ticker(20, 10)}` }));
    const b = readEvents(await attach(execId));
    const c = readEvents(await attach(execId));
    const [ra, rb, rc] = await Promise.all([a, b, c]);
    expectLines(textOf(ra.events), 20);
    expect(rb.events).toEqual(ra.events);
    expect(rc.events).toEqual(ra.events);
  });

  it("sends heartbeats as SSE comments on a quiet stream", async () => {
    const execId = `quiet-${Date.now()}`;
    const result = await readEvents(await start({ execId, argv: ["sleep", "0.7"] }));
    expect(result.comments.length).toBeGreaterThanOrEqual(2);
    expect(exitOf(result.events).outcome).toBe("completed");
  });

  it("cuts off a slow consumer while the exec and a fast consumer carry on", async () => {
    const execId = `slow-${Date.now()}`;
    // About 25 MB, paced so a reading consumer keeps up easily.
    const fast = readEvents(
      await start({ execId, shell: "sleep 0.3; for i in $(seq 1 100); do seq 1 40000; sleep 0.02; done; echo done" }),
    );
    // The slow consumer reads its first bytes, then stops reading while output pours in.
    const slowResponse = await attach(execId);
    const slowBody = slowResponse.body;
    if (!slowBody) throw new Error("no body");
    const slowReader = slowBody.getReader();
    await slowReader.read();
    const fastResult = await fast;
    expect(fastResult.end).toBe("closed");
    expect(exitOf(fastResult.events).outcome).toBe("completed");
    expect(textOf(fastResult.events).endsWith("40000\ndone\n")).toBe(true);
    // Now drain the slow one: it must end abruptly (cut), not with the exit event.
    let text = "";
    let broken = false;
    try {
      for (;;) {
        const { done, value } = await slowReader.read();
        if (done) break;
        text += Buffer.from(value).toString();
      }
    } catch {
      broken = true;
    }
    expect(broken).toBe(false);
    expect(text).not.toContain("event: exit");
    expect(text).toContain(": fell behind the output");
    expect(runnerd.logs()).toContain("slow consumer cut off");
    // It can re-attach from its last id and learn precisely what it missed.
    const ids = [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    const lastId = ids.at(-1) ?? 0;
    const resumed = await readEvents(await attach(execId, { "Last-Event-ID": String(lastId) }));
    const head: ExecEvent | undefined = resumed.events[0];
    expect(head?.type).toBe("gap");
    expect(exitOf(resumed.events).outcome).toBe("completed");
  });

  it("counts attached consumers in the exec record", async () => {
    const execId = `count-${Date.now()}`;
    const first = readEvents(await start({ execId, argv: ["sleep", "1"] }));
    await new Promise((r) => setTimeout(r, 100));
    const info = ExecInfoSchema.parse((await runnerd.json("GET", `/v1/execs/${execId}`)).body);
    expect(info.consumers).toBe(1);
    expect(info.state).toBe("running");
    await first;
  });
});
