import { describe, expect, it } from "vitest";
import { statusOf } from "./error-codes.js";
import { ApiError, fieldIssues, parseOrThrow } from "./errors.js";
import { decodeSseEvent, type ExecEvent, encodeSseEvent } from "./events.js";
import { ExecRequestSchema, FetchRequestSchema, FileListQuerySchema } from "./runnerd.js";

describe("ExecRequestSchema", () => {
  it("fills defaults for a minimal request", () => {
    expect(ExecRequestSchema.parse({ shell: "ls" })).toEqual({ shell: "ls", encoding: "utf8" });
  });

  it("names the fields that are wrong", () => {
    const result = ExecRequestSchema.safeParse({ argv: ["a"], timeoutMs: -1, stdin: { text: "a", data: "YQ==" } });
    expect(result.success).toBe(false);
    if (result.success) return;
    expect(
      fieldIssues(result.error)
        .map((i) => i.path)
        .sort(),
    ).toEqual(["stdin.data", "timeoutMs"]);
  });
});

describe("query schemas", () => {
  it("parse integers and defaults from query strings", () => {
    expect(FileListQuerySchema.parse({ depth: "3" })).toEqual({ path: ".", depth: 3 });
    expect(FileListQuerySchema.safeParse({ depth: "0" }).success).toBe(false);
    expect(FileListQuerySchema.safeParse({ depth: "1e3" }).success).toBe(false);
  });

  it("only accept http and https URLs to fetch", () => {
    expect(FetchRequestSchema.safeParse({ url: "file:///etc/passwd", path: "x" }).success).toBe(false);
    expect(FetchRequestSchema.safeParse({ url: "https://example.com/a", path: "x" }).success).toBe(true);
  });
});

describe("errors", () => {
  it("map codes to statuses and to the envelope", () => {
    expect(statusOf("EXEC_NOT_FOUND")).toBe(404);
    const error = new ApiError("TOO_MANY_EXECS", "busy", { headers: { "Retry-After": "1" } });
    expect(error.status).toBe(429);
    expect(error.toEnvelope()).toEqual({ error: { code: "TOO_MANY_EXECS", message: "busy" } });
  });

  it("throw VALIDATION_FAILED with every issue from parseOrThrow", () => {
    try {
      parseOrThrow(ExecRequestSchema, { argv: [] }, "exec request");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ApiError);
      if (!(error instanceof ApiError)) return;
      expect(error.code).toBe("VALIDATION_FAILED");
      expect(error.message).toMatch(/^invalid exec request: argv/);
    }
  });
});

describe("SSE event encoding", () => {
  it("round-trips every event type through one frame", () => {
    const events: ExecEvent[] = [
      { seq: 1, type: "started", data: { execId: "a", pid: 42, startedAt: 1 } },
      { seq: 2, type: "stdout", data: { text: 'line\nwith "quotes"' } },
      { seq: 3, type: "stderr", data: { data: "AAEC" } },
      { seq: 5, type: "gap", data: { fromSeq: 4, toSeq: 5 } },
      {
        seq: 6,
        type: "exit",
        data: { exitCode: 0, signal: null, outcome: "completed", durationMs: 1.5, truncated: false },
      },
    ];
    for (const event of events) {
      const frame = encodeSseEvent(event);
      expect(frame.endsWith("\n\n")).toBe(true);
      expect(frame.split("\n")).toHaveLength(5);
      const [id, type, data] = frame.split("\n");
      expect(decodeSseEvent({ id: id?.slice(4), event: type?.slice(7), data: data?.slice(6) ?? "" })).toEqual(event);
    }
  });

  it("rejects events that break the contract", () => {
    expect(() => decodeSseEvent({ id: "1", event: "exit", data: '{"exitCode":0}' })).toThrow();
    expect(() => decodeSseEvent({ id: "x", event: "stdout", data: '{"text":"a"}' })).toThrow();
    expect(() => decodeSseEvent({ id: "1", event: "stdout", data: "not json" })).toThrow(/invalid JSON/);
  });
});
