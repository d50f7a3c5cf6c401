import { EXEC_FRAMES_MEDIA_TYPE } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunnerdHandle, startRunnerd } from "../support/runnerd.js";
import { bytesOf, exitOf, readEvents, textOf } from "../support/sse.js";

let runnerd: RunnerdHandle;

beforeAll(async () => {
  // A small ring makes eviction (and so gaps) easy to provoke.
  runnerd = await startRunnerd({ env: { RUNNERD_RING_BYTES: String(64 * 1024), RUNNERD_HEARTBEAT_MS: "200" } });
});
afterAll(async () => {
  await runnerd?.stop();
});

const FRAMES = { accept: EXEC_FRAMES_MEDIA_TYPE };
const start = (body: unknown, headers: Record<string, string> = {}) =>
  runnerd.request("/v1/execs", { method: "POST", body: JSON.stringify(body), headers });
const attach = (execId: string, headers: Record<string, string> = {}) =>
  runnerd.request(`/v1/execs/${execId}/events`, { headers });

describe("exec events as binary frames", () => {
  it("are what a client gets when its Accept names them; SSE stays the default", async () => {
    const framed = await start({ execId: `accept-${Date.now()}`, argv: ["true"] }, FRAMES);
    expect(framed.headers.get("content-type")).toBe(EXEC_FRAMES_MEDIA_TYPE);
    await readEvents(framed);
    const plain = await start({ execId: `plain-${Date.now()}`, argv: ["true"] });
    expect(plain.headers.get("content-type")).toMatch(/^text\/event-stream/);
    await readEvents(plain);
  });

  it("carry the same events, ids and text as SSE, control characters and multi-byte text included", async () => {
    const execId = `same-${Date.now()}`;
    const shell = `printf 'a "quoted" \\\\ line\\n\\tü 漢字 😀\\r\\n\\001\\033[31mred\\033[0m\\n'; echo err >&2; exit 3`;
    const framed = await readEvents(await start({ execId, shell }, FRAMES));
    const sse = await readEvents(await attach(execId));
    expect(framed.events).toEqual(sse.events);
    expect(textOf(framed.events)).toBe('a "quoted" \\ line\n\tü 漢字 😀\r\n\u0001\u001b[31mred\u001b[0m\n');
    expect(textOf(framed.events, "stderr")).toBe("err\n");
    expect(exitOf(framed.events)).toMatchObject({ exitCode: 3, outcome: "failed" });
  });

  it("carry a base64-mode exec's bytes exactly", async () => {
    const execId = `bytes-${Date.now()}`;
    const framed = await readEvents(
      await start({ execId, encoding: "base64", shell: "head -c 50000 /dev/urandom" }, FRAMES),
    );
    const sse = await readEvents(await attach(execId));
    expect(framed.events).toEqual(sse.events);
    expect(bytesOf(framed.events).length).toBe(50000);
  });

  it("re-attach with Last-Event-ID and report evicted events as the same exact gap", async () => {
    const execId = `gap-${Date.now()}`;
    const first = await readEvents(await start({ execId, shell: "seq 1 150000" }, FRAMES), (e) => e.seq >= 3);
    expect(first.end).toBe("stopped");
    await new Promise((r) => setTimeout(r, 500));
    const framed = await readEvents(await attach(execId, { ...FRAMES, "last-event-id": "3" }));
    const sse = await readEvents(await attach(execId, { "last-event-id": "3" }));
    expect(framed.events).toEqual(sse.events);
    const gap = framed.events[0];
    expect(gap?.type).toBe("gap");
    if (gap?.type !== "gap") return;
    expect(gap.data.fromSeq).toBe(4);
    expect(textOf(framed.events).endsWith("149999\n150000\n")).toBe(true);
    expect(exitOf(framed.events).truncated).toBe(true);
  });

  it("keep a quiet stream alive with heartbeat frames", async () => {
    const result = await readEvents(await start({ execId: `quiet-${Date.now()}`, argv: ["sleep", "0.7"] }, FRAMES));
    expect(result.comments.filter((c) => c === "keep-alive").length).toBeGreaterThanOrEqual(2);
    expect(exitOf(result.events).outcome).toBe("completed");
  });
});
