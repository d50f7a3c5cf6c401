import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  codesOf,
  ERROR_TABLE_DOCS,
  ERROR_TABLE_END,
  errorTableBegin,
  withErrorTable,
} from "../../../scripts/error-tables.js";

const REPO_ROOT = new URL("../../../", import.meta.url);
const REWRITE = "run `bun scripts/error-tables.ts` to write it from packages/protocol/src/error-codes.ts";

/** The codes a doc's error table lists: the first cell of each row between its markers that is a `CODE`. */
function documentedCodes(markdown: string, begin: string): string[] {
  const start = markdown.indexOf(begin);
  const end = markdown.indexOf(ERROR_TABLE_END, start);
  if (start === -1 || end === -1) return [];
  return markdown
    .slice(start + begin.length, end)
    .split("\n")
    .flatMap((line) => /^\|\s*\d{3}\s*\|\s*`([A-Z_]+)`/.exec(line)?.[1] ?? []);
}

describe.each(ERROR_TABLE_DOCS)("the error table of $path", ({ path, region }) => {
  const markdown = readFileSync(new URL(path, REPO_ROOT), "utf8");

  it(`lists exactly the codes of ERROR_CODES that it should (${region})`, () => {
    const documented = documentedCodes(markdown, errorTableBegin(region));
    const expected: string[] = codesOf(region);
    const missing = expected.filter((code) => !documented.includes(code));
    const unknown = documented.filter((code) => !expected.includes(code));
    expect({ missing, unknown }, `${path}: ${REWRITE}`).toEqual({ missing: [], unknown: [] });
    expect(documented).toEqual(expected);
  });

  it("is what scripts/error-tables.ts writes: status, origin, meaning and details as the protocol has them", () => {
    expect(markdown, `${path} differs from its generated table: ${REWRITE}`).toBe(withErrorTable(markdown, region));
  });
});
