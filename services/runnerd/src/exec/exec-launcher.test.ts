import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { commandProblem, LOCKS_MARK_BASE, launchCommand } from "./exec-launcher.js";

describe("the exec launcher", () => {
  it("marks the command's lock limit and OOM score before it runs, and passes its arguments exactly", () => {
    const mark = LOCKS_MARK_BASE + 42;
    const [file, args] = launchCommand(mark, [
      "sh",
      "-c",
      'grep "Max file locks" /proc/self/limits; cat /proc/self/oom_score_adj; printf "%s|" "$@"',
      "zero",
      "a b",
      "'quoted'",
      "$HOME",
    ]);
    const out = execFileSync(file, args, { encoding: "utf8" });
    expect(out).toMatch(new RegExp(`Max file locks\\s+${mark}\\s+${mark}`));
    expect(out).toContain("\n1000\n");
    expect(out.trimEnd().split("\n").at(-1)).toBe("a b|'quoted'|$HOME|");
  });

  it("says which commands cannot run, as exec would find them", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "launcher-"));
    writeFileSync(path.join(dir, "plain.txt"), "not a program");
    writeFileSync(path.join(dir, "tool"), "#!/bin/sh\necho ok\n");
    chmodSync(path.join(dir, "tool"), 0o755);
    mkdirSync(path.join(dir, "folder"));
    expect(commandProblem("ls", dir, "/usr/bin:/bin")).toBeUndefined();
    expect(commandProblem("tool", dir, dir)).toBeUndefined();
    expect(commandProblem("./tool", dir, "/usr/bin")).toBeUndefined();
    expect(commandProblem("no-such-command-here", dir, "/usr/bin:/bin")?.code).toBe("COMMAND_NOT_FOUND");
    expect(commandProblem("./missing", dir, "/usr/bin")?.code).toBe("COMMAND_NOT_FOUND");
    expect(commandProblem("./folder", dir, "/usr/bin")?.code).toBe("COMMAND_NOT_EXECUTABLE");
  });
});
