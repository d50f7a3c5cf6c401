import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { type ExecEvent, encodeSseEvent } from "./events.js";
import {
  BINARY_FRAMING,
  BinaryFrameDecoder,
  EXEC_FRAMES_MEDIA_TYPE,
  framingFor,
  SSE_FRAMING,
  storeEvent,
  toBinaryFrame,
  toSseFrame,
} from "./exec-frames.js";

const events: ExecEvent[] = [
  { seq: 1, type: "started", data: { execId: "e1", pid: 42, startedAt: 1_700_000_000_000 } },
  { seq: 2, type: "stdout", data: { text: 'line "one"\n\ttwo ünï 😀\r\n' } },
  { seq: 3, type: "stderr", data: { data: randomBytes(300).toString("base64") } },
  { seq: 4, type: "stdout", data: { text: "" } },
  { seq: 9, type: "gap", data: { fromSeq: 5, toSeq: 8 } },
  {
    seq: 2 ** 40 + 3,
    type: "exit",
    data: { exitCode: 0, signal: null, outcome: "completed", durationMs: 12.5, truncated: false },
  },
];

describe("exec event framing", () => {
  it("gives, as SSE, exactly what encodeSseEvent gives for every kind of event", () => {
    for (const event of events) {
      expect(toSseFrame(storeEvent(event)).toString("utf8")).toBe(encodeSseEvent(event));
    }
  });

  it("decodes binary frames back to the same events, however the bytes are split", () => {
    const wire = Buffer.concat([
      BINARY_FRAMING.heartbeat,
      ...events.map((e) => toBinaryFrame(storeEvent(e))),
      BINARY_FRAMING.notice("fell behind"),
    ]);
    for (const size of [1, 5, 11, 12, 13, 64, wire.length]) {
      const decoder = new BinaryFrameDecoder();
      const decoded = [];
      for (let i = 0; i < wire.length; i += size) decoded.push(...decoder.push(wire.subarray(i, i + size)));
      expect(decoded.filter((f) => f.kind === "event").map((f) => f.event)).toEqual(events);
      expect(decoded[0]).toEqual({ kind: "heartbeat" });
      expect(decoded.at(-1)).toEqual({ kind: "notice", text: "fell behind" });
      expect(decoder.partialBytes).toBe(0);
    }
  });

  it("carries output as the raw bytes: 12 bytes of header, no escaping, no base64", () => {
    const bytes = randomBytes(1000);
    const frame = toBinaryFrame(storeEvent({ seq: 7, type: "stdout", data: { data: bytes.toString("base64") } }));
    expect(frame.length).toBe(1012);
    expect(frame.subarray(12).equals(bytes)).toBe(true);
  });

  it("reports a stream cut mid-frame, and refuses an unknown frame kind or a non-event JSON", () => {
    const decoder = new BinaryFrameDecoder();
    const frame = toBinaryFrame(storeEvent({ seq: 1, type: "stdout", data: { text: "hello" } }));
    expect(decoder.push(frame.subarray(0, 14))).toEqual([]);
    expect(decoder.partialBytes).toBe(14);

    const unknown = Buffer.from(frame);
    unknown[0] = 99;
    expect(() => new BinaryFrameDecoder().push(unknown)).toThrow(/unknown binary frame kind 99/);
    const badExit = toBinaryFrame({ seq: 2, type: "exit", json: '{"exitCode":"zero"}' });
    expect(() => new BinaryFrameDecoder().push(badExit)).toThrow();
  });

  it("is chosen only when Accept names it; SSE stays the default", () => {
    expect(framingFor(undefined)).toBe(SSE_FRAMING);
    expect(framingFor("text/event-stream")).toBe(SSE_FRAMING);
    expect(framingFor("*/*")).toBe(SSE_FRAMING);
    expect(framingFor(`${EXEC_FRAMES_MEDIA_TYPE}, text/event-stream;q=0.9`)).toBe(BINARY_FRAMING);
  });
});
