import { afterEach } from "vitest";
import "./skips.js";

// A vitest setup file. A test that skips itself while it runs (`context.skip(why)`) keeps `why`
// only in its result's note, which vitest's JSON report drops: copy it into the test's meta, which
// the report keeps, so scripts/test-summary.mjs can list the reason. (vitest sets the note at run
// time but does not declare it on TaskResult, hence the `in` check.)
afterEach(({ task }) => {
  const result = task.result;
  if (result?.state !== "skip" || !("note" in result) || typeof result.note !== "string") return;
  task.meta.skipReason ??= result.note;
});
