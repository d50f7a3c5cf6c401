/**
 * Writes the error tables of docs/api.md and docs/runnerd.md from the
 * protocol's ERROR_CODES, between their `error-table` markers:
 *
 *   bun scripts/error-tables.ts
 *
 * packages/protocol/src/error-tables.test.ts fails while a doc differs from
 * what this script would write, so a code added, removed or reworded in the
 * protocol cannot leave the docs behind.
 */
import { readFileSync, writeFileSync } from "node:fs";
import {
  ERROR_CODES,
  ERROR_STATUS,
  type ErrorCode,
  type ErrorCodeFacts,
  type ErrorSource,
} from "../packages/protocol/src/error-codes.js";

/** Which codes a table lists: every code, or those one service answers. */
export type ErrorTableRegion = "all" | ErrorSource;

/** The docs that hold an error table, relative to the repository root. */
export const ERROR_TABLE_DOCS: ReadonlyArray<{ path: string; region: ErrorTableRegion }> = [
  // API callers get runnerd's codes too: the spawner passes its answers on unchanged.
  { path: "docs/api.md", region: "all" },
  { path: "docs/runnerd.md", region: "runnerd" },
];

export const ERROR_TABLE_END = "<!-- /error-table -->";

export function errorTableBegin(region: ErrorTableRegion): string {
  return `<!-- error-table ${region}: written by scripts/error-tables.ts from packages/protocol/src/error-codes.ts -->`;
}

/** The codes a region lists, in the order its table shows them: by status, then as ERROR_STATUS has them. */
export function codesOf(region: ErrorTableRegion): ErrorCode[] {
  const codes = Object.keys(ERROR_CODES).filter(isKnown);
  const listed = codes.filter((code) => region === "all" || factsOf(code).from.includes(region));
  return listed.sort((a, b) => ERROR_STATUS[a] - ERROR_STATUS[b]);
}

/** The markdown table of a region's codes. */
export function errorTable(region: ErrorTableRegion): string {
  const header = ["status", "code", "from", "meaning", "details"];
  const rows = codesOf(region).map((code) => {
    const facts = factsOf(code);
    return [String(ERROR_STATUS[code]), `\`${code}\``, sourceLabel(facts.from), facts.meaning, detailsCell(facts)];
  });
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? "").length)));
  const line = (cells: string[]) => `| ${cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(" | ")} |`;
  return [line(header), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)].join("\n");
}

/** `markdown` with its table for `region` rewritten; throws unless the markers are there once each. */
export function withErrorTable(markdown: string, region: ErrorTableRegion): string {
  const begin = errorTableBegin(region);
  const start = markdown.indexOf(begin);
  if (start === -1 || markdown.indexOf(begin, start + 1) !== -1) {
    throw new Error(`expected exactly one line ${JSON.stringify(begin)}`);
  }
  const afterBegin = start + begin.length;
  const end = markdown.indexOf(ERROR_TABLE_END, afterBegin);
  if (end === -1) throw new Error(`expected ${JSON.stringify(ERROR_TABLE_END)} after ${JSON.stringify(begin)}`);
  return `${markdown.slice(0, afterBegin)}\n\n${errorTable(region)}\n\n${markdown.slice(end)}`;
}

function isKnown(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_STATUS, code);
}

function factsOf(code: ErrorCode): ErrorCodeFacts {
  return ERROR_CODES[code];
}

function sourceLabel(from: readonly ErrorSource[]): string {
  if (from.length === 3) return "all";
  return from.includes("spawner") && from.includes("runnerd") ? "both" : from.join(", ");
}

function detailsCell(facts: ErrorCodeFacts): string {
  if (facts.details === undefined) return "";
  const shape = `\`${shapeOf(facts.details.toJSONSchema(), 0).replaceAll("|", "\\|")}\``;
  // Optional details: some answers with the code carry none.
  return facts.details.safeParse(undefined).success ? `${shape} or none` : shape;
}

/** The parts of a JSON Schema that zod writes for the details schemas. */
interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, boolean | JsonSchema>;
  required?: string[];
  items?: boolean | JsonSchema | Array<boolean | JsonSchema>;
  anyOf?: JsonSchema[];
  enum?: Array<string | number | boolean | null>;
}

/**
 * A TypeScript-like one-liner of a schema: `{limit: number, scope: "global" | "org"}`.
 * Objects nested in an object show their keys only, to keep a table cell short.
 */
function shapeOf(schema: boolean | JsonSchema | Array<boolean | JsonSchema>, depth: number): string {
  if (typeof schema === "boolean" || Array.isArray(schema)) return "unknown";
  if (schema.anyOf) return schema.anyOf.map((member) => shapeOf(member, depth)).join(" | ");
  if (schema.enum) return schema.enum.map((value) => JSON.stringify(value)).join(" | ");
  const types = typeof schema.type === "string" ? [schema.type] : (schema.type ?? []);
  return types.map((type) => shapeOfType(type, schema, depth)).join(" | ") || "unknown";
}

function shapeOfType(type: string, schema: JsonSchema, depth: number): string {
  if (type === "integer") return "number";
  if (type === "array") {
    const items = schema.items === undefined ? "unknown" : shapeOf(schema.items, depth);
    return items.includes(" | ") ? `(${items})[]` : `${items}[]`;
  }
  if (type !== "object") return type;
  const required = new Set(schema.required ?? []);
  const fields = Object.entries(schema.properties ?? {}).map(([key, value]) => {
    const name = required.has(key) ? key : `${key}?`;
    return depth === 0 ? `${name}: ${shapeOf(value, depth + 1)}` : name;
  });
  return `{${fields.join(", ")}}`;
}

if (import.meta.main) {
  const root = new URL("../", import.meta.url);
  for (const doc of ERROR_TABLE_DOCS) {
    const file = new URL(doc.path, root);
    const before = readFileSync(file, "utf8");
    const after = withErrorTable(before, doc.region);
    if (after === before) {
      console.log(`${doc.path}: up to date`);
    } else {
      writeFileSync(file, after);
      console.log(`${doc.path}: error table written`);
    }
  }
}
