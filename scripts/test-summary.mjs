// Ends a test run with one plain line, "N passed, N failed, N skipped", summing every vitest
// project from the JSON report, and lists before it every test that did not run, with its reason:
// a skip must say why, or CI reads green while a suite never ran. The reason is the test's
// `meta.skipReason`: tests/support/skips.ts puts it there for a suite skipped for want of its
// platform, and tests/support/skip-notes.ts copies it from a `context.skip(why)` note.
// A file that failed outside any test (an import or hook that threw, e.g. "CI requires Docker")
// counts as a failure and is named; so does a test command that failed before or outside vitest
// (build, typecheck, lint), so a red run never reads as green.
//
// Usage: node scripts/test-summary.mjs [.test-results/vitest.json] [exit status of the test command]
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

const [reportPath = ".test-results/vitest.json", exitCode = "0"] = process.argv.slice(2);

let passed = 0;
let failed = 0;
const skipped = [];
const brokenFiles = [];

if (existsSync(reportPath)) {
  const report = JSON.parse(readFileSync(reportPath, "utf8"));
  for (const file of report.testResults ?? []) {
    const name = path.relative(process.cwd(), file.name ?? "") || file.name;
    const tests = file.assertionResults ?? [];
    const failedHere = tests.filter((t) => t.status === "failed").length;
    passed += tests.filter((t) => t.status === "passed").length;
    failed += failedHere;
    const fileFailed = file.status === "failed";
    if (fileFailed && failedHere === 0) {
      failed += 1;
      brokenFiles.push({ name, message: firstLine(file.message) || "a hook or the file itself failed; see the log" });
    }
    for (const test of tests) {
      if (test.status === "passed" || test.status === "failed") continue;
      skipped.push({ name: `${test.fullName} (${name})`, reason: reasonOf(test, fileFailed) });
    }
  }
}
if (exitCode !== "0" && failed === 0) failed = 1;

if (skipped.length > 0) {
  console.log(`skipped (${skipped.length}):`);
  for (const test of skipped) console.log(`  - ${test.name}: ${test.reason}`);
}
for (const file of brokenFiles) console.log(`failed outside any test: ${file.name}: ${file.message}`);
console.log(`${passed} passed, ${failed} failed, ${skipped.length} skipped`);

function reasonOf(test, fileFailed) {
  if (test.meta?.skipReason) return test.meta.skipReason;
  if (test.status === "todo") return "todo: not written yet";
  if (fileFailed) return "no reason recorded; its file failed, so a hook before it may have thrown";
  return "no reason recorded (an it.skip without one)";
}

function firstLine(text) {
  return (text ?? "").split("\n")[0].trim();
}
