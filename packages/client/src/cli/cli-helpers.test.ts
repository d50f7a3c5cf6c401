import { afterEach, describe, expect, it, vi } from "vitest";
import { parseLocation } from "./commands/cp.js";
import { exitCodeOf } from "./commands/exec.js";
import { formatDuration, parseDuration } from "./duration.js";
import { Progress } from "./progress.js";

describe("durations", () => {
  it("parse the units people write, alone or combined", () => {
    expect(parseDuration("90s")).toBe(90_000);
    expect(parseDuration("2h")).toBe(7_200_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("1.5d")).toBe(129_600_000);
    for (const bad of ["", "2", "2 h", "soon", "h2"]) expect(() => parseDuration(bad)).toThrow(/not a duration/);
  });

  it("format the two largest units", () => {
    expect(formatDuration(90_500)).toBe("1m 30s");
    expect(formatDuration(3 * 86_400_000 + 4 * 3_600_000 + 5000)).toBe("3d 4h");
    expect(formatDuration(250)).toBe("250ms");
    expect(formatDuration(-60_000)).toBe("-1m");
  });
});

describe("cp locations", () => {
  it("tell session paths from local ones", () => {
    expect(parseLocation("demo:src/a.txt")).toEqual({ session: "demo", path: "src/a.txt" });
    expect(parseLocation("demo:")).toEqual({ session: "demo", path: "." });
    expect(parseLocation("./demo:odd")).toEqual({ local: "./demo:odd" });
    expect(parseLocation("/tmp/x")).toEqual({ local: "/tmp/x" });
    expect(parseLocation("-")).toEqual({ local: "-" });
    expect(parseLocation("Not_A_Session:x")).toEqual({ local: "Not_A_Session:x" });
  });
});

describe("exit codes", () => {
  const exit = { exitCode: null, signal: null, outcome: "failed" as const, durationMs: 1, truncated: false };
  it("are the remote code, else 128+signal, 127/126 for unstartable commands, 124 for timeouts", () => {
    expect(exitCodeOf({ ...exit, exitCode: 3 })).toBe(3);
    expect(exitCodeOf({ ...exit, signal: "SIGKILL", outcome: "cancelled" })).toBe(137);
    expect(exitCodeOf({ ...exit, signal: "SIGINT", outcome: "cancelled" })).toBe(130);
    expect(exitCodeOf({ ...exit, error: { code: "COMMAND_NOT_FOUND", message: "x" } })).toBe(127);
    expect(exitCodeOf({ ...exit, error: { code: "COMMAND_NOT_EXECUTABLE", message: "x" } })).toBe(126);
    expect(exitCodeOf({ ...exit, outcome: "timeout" })).toBe(124);
  });
});

describe("progress", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  function terminal(isTTY: boolean) {
    let written = "";
    const stream = {
      isTTY,
      columns: 80,
      write: (text: string) => {
        written += text;
      },
    };
    return { stream, written: () => written };
  }

  it("shows nothing for quick transfers or when not on a terminal", () => {
    vi.useFakeTimers();
    const quick = terminal(true);
    const progress = new Progress("copy", 100, quick.stream);
    progress.update(50);
    progress.done();
    expect(quick.written()).toBe("");
    const piped = terminal(false);
    const silent = new Progress("copy", 100, piped.stream);
    vi.advanceTimersByTime(5000);
    silent.update(50);
    expect(piped.written()).toBe("");
  });

  it("draws a bar with percentage and rate for longer ones, and clears it at the end", () => {
    vi.useFakeTimers();
    const tty = terminal(true);
    const progress = new Progress("copy", 2_000_000, tty.stream);
    vi.advanceTimersByTime(1000);
    progress.update(1_000_000);
    expect(tty.written()).toMatch(/\rcopy \[#{12}-{12}\] 50% 1\.0 MB of 2\.0 MB 1\.0 MB\/s/);
    progress.done();
    expect(tty.written().endsWith("\r\u001b[K")).toBe(true);
  });
});
