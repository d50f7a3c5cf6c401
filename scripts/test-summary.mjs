// Prints one plain line, "N passed, N failed", summing every vitest project from
// the JSON report. A test command that failed before or outside vitest (build,
// typecheck, lint) counts as one more failure, so a red run never reads as green.
import { existsSync, readFileSync } from "node:fs";

const [reportPath = ".test-results/vitest.json", exitCode = "0"] = process.argv.slice(2);
let passed = 0;
let failed = 0;
if (existsSync(reportPath)) {
  const report = JSON.parse(readFileSync(reportPath, "utf8"));
  passed = report.numPassedTests ?? 0;
  failed = (report.numFailedTests ?? 0) + (report.numRuntimeErrorTestSuites ?? 0);
}
if (exitCode !== "0" && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed`);
