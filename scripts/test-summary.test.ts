import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("./test-summary.mjs", import.meta.url));

/** One test as vitest 5's JSON reporter writes it (the fields the summary reads, and a few beside). */
function test(ancestorTitles: string[], title: string, status: string, meta: Record<string, string> = {}) {
  return { ancestorTitles, fullName: [...ancestorTitles, title].join(" "), status, title, failureMessages: [], meta };
}

/**
 * The shape of a real report (trimmed from one vitest 5.1 wrote for a fixture file with each kind
 * of skip): a suite skipped for want of its platform, a test that skipped itself, a plain it.skip,
 * a todo, an expected failure (reported as passed), a failure, and a file that threw on import.
 */
const REPORT = {
  numPassedTests: 2,
  numFailedTests: 1,
  testResults: [
    {
      name: "ROOT/tests/spawner/lifecycle.test.ts",
      status: "failed",
      message: "",
      assertionResults: [
        test(["session lifecycle (docker)"], "creates a session", "skipped", {
          skipReason: "no Docker engine answers `docker info`",
        }),
        test(["session lifecycle (docker)", "nested"], "deletes it", "skipped", {
          skipReason: "no Docker engine answers `docker info`",
        }),
        test(["warm pool (docker)"], "renews a lock", "skipped", {
          skipReason: "docker cannot renew a lock in place",
        }),
        test(["runs"], "passes", "passed"),
        test(["runs"], "fails", "failed"),
        test(["runs"], "a known gap", "passed"),
        test(["runs"], "later", "todo"),
      ],
    },
    {
      name: "ROOT/tests/spawner/other.test.ts",
      status: "passed",
      message: "",
      assertionResults: [test(["other"], "plain skip", "skipped")],
    },
    {
      name: "ROOT/tests/compose/compose.test.ts",
      status: "failed",
      message: "CI requires compose v2: provisioning broke: the docker compose v2 plugin is missing\nat line 2",
      assertionResults: [],
    },
  ],
};

describe("scripts/test-summary.mjs", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "sbx-test-summary-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Runs the script as .ci/run does: a report path and the test command's exit status. */
  async function summarize(report: unknown, status: string): Promise<string[]> {
    const file = path.join(dir, `report-${Math.random().toString(36).slice(2)}.json`);
    if (report !== undefined) await writeFile(file, JSON.stringify(report).replaceAll("ROOT", dir));
    const { stdout } = await run(process.execPath, [SCRIPT, file, status], { cwd: dir });
    return stdout.trimEnd().split("\n");
  }

  it("lists every skipped test with its reason, the files that failed outside a test, then the closing line", async () => {
    expect(await summarize(REPORT, "1")).toEqual([
      "skipped (5):",
      "  - session lifecycle (docker) creates a session (tests/spawner/lifecycle.test.ts): no Docker engine answers `docker info`",
      "  - session lifecycle (docker) nested deletes it (tests/spawner/lifecycle.test.ts): no Docker engine answers `docker info`",
      "  - warm pool (docker) renews a lock (tests/spawner/lifecycle.test.ts): docker cannot renew a lock in place",
      "  - runs later (tests/spawner/lifecycle.test.ts): todo: not written yet",
      "  - other plain skip (tests/spawner/other.test.ts): no reason recorded (an it.skip without one)",
      "failed outside any test: tests/compose/compose.test.ts: CI requires compose v2: provisioning broke: the docker compose v2 plugin is missing",
      "2 passed, 2 failed, 5 skipped",
    ]);
  });

  it("says a test whose file failed without a reason of its own may have lost a hook", async () => {
    const report = {
      testResults: [
        {
          name: "ROOT/tests/kubernetes/isolation.test.ts",
          status: "failed",
          message: "",
          assertionResults: [test(["isolation"], "blocks", "skipped")],
        },
      ],
    };
    expect(await summarize(report, "1")).toEqual([
      "skipped (1):",
      "  - isolation blocks (tests/kubernetes/isolation.test.ts): no reason recorded; its file failed, so a hook before it may have thrown",
      "failed outside any test: tests/kubernetes/isolation.test.ts: a hook or the file itself failed; see the log",
      "0 passed, 1 failed, 1 skipped",
    ]);
  });

  it("prints only the closing line when everything ran", async () => {
    const report = {
      testResults: [{ name: "ROOT/a.test.ts", status: "passed", assertionResults: [test([], "a", "passed")] }],
    };
    expect(await summarize(report, "0")).toEqual(["1 passed, 0 failed, 0 skipped"]);
  });

  it("counts a failed command as a failure when vitest reported none, or wrote no report", async () => {
    const green = {
      testResults: [{ name: "ROOT/a.test.ts", status: "passed", assertionResults: [test([], "a", "passed")] }],
    };
    expect(await summarize(green, "2")).toEqual(["1 passed, 1 failed, 0 skipped"]);
    expect(await summarize(undefined, "1")).toEqual(["0 passed, 1 failed, 0 skipped"]);
  });
});
