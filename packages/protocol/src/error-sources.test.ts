import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ERROR_CODES, type ErrorCode, type ErrorSource, isErrorCode } from "./error-codes.js";

const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const SERVICES = ["spawner", "runnerd", "gateway"] as const;

/**
 * The source folders each service runs. Both run the shared edge (HTTP
 * parsing, JSON bodies, the error handler) and the protocol (parseOrThrow).
 */
const SOURCES: Record<ErrorSource, string[]> = {
  spawner: ["services/spawner/src", "packages/edge/src", "packages/protocol/src"],
  runnerd: ["services/runnerd/src", "packages/edge/src", "packages/protocol/src"],
  gateway: ["services/gateway/src", "packages/edge/src", "packages/protocol/src"],
};

/** Source that answers no caller: the table of codes itself, and stand-ins only tests run. */
const NOT_ANSWERING = ["packages/protocol/src/error-codes.ts"];

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(REPO_ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".ts") && !entry.name.endsWith(".test.ts"))
    .map((entry) => path.relative(REPO_ROOT, path.join(entry.parentPath, entry.name)))
    .filter((file) => !NOT_ANSWERING.some((skipped) => file.startsWith(skipped)));
}

/** The error codes a file names as string literals (`new ApiError("CODE", …)`, `[431, "CODE", …]`). */
function codesNamedIn(file: string): Set<ErrorCode> {
  const text = readFileSync(path.join(REPO_ROOT, file), "utf8");
  const named = new Set<ErrorCode>();
  for (const match of text.matchAll(/["'`]([A-Z][A-Z_]+)["'`]/g)) {
    const code = match[1];
    if (code !== undefined && isErrorCode(code)) named.add(code);
  }
  return named;
}

const namedBy = new Map<ErrorSource, Set<ErrorCode>>();
for (const service of SERVICES) {
  namedBy.set(service, new Set(SOURCES[service].flatMap(sourceFiles).flatMap((file) => [...codesNamedIn(file)])));
}

describe("where error codes come from", () => {
  it("finds the sources of both services", () => {
    expect(namedBy.get("spawner")?.size).toBeGreaterThan(10);
    expect(namedBy.get("runnerd")?.size).toBeGreaterThan(10);
  });

  it.each(Object.keys(ERROR_CODES).filter(isErrorCode))(
    "%s is answered by exactly the services ERROR_CODES names",
    (code) => {
      const answeredBy = SERVICES.filter((service) => namedBy.get(service)?.has(code));
      expect(
        answeredBy,
        answeredBy.length === 0
          ? `no source of services/ or packages/ answers ${code}: throw it where it applies, or remove it from the protocol`
          : `ERROR_CODES.${code}.from must name the services whose sources answer it`,
      ).toEqual([...ERROR_CODES[code].from]);
    },
  );
});
