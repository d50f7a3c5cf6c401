/**
 * Keeps docs/performance.md reproducible: every figure table, and every "Latest figures"
 * section, has a `node tests/bench/run.mjs <benchmark> …` command beside it (between the heading
 * above it and the table), and every such command names a benchmark run.mjs knows
 * (tests/bench/benchmarks.json) with options that benchmark takes.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import BENCHMARKS from "../tests/bench/benchmarks.json" with { type: "json" };

const DOC_PATH = "docs/performance.md";
const doc = readFileSync(new URL(`../${DOC_PATH}`, import.meta.url), "utf8");
const known: Record<string, string> = BENCHMARKS;

interface Command {
  line: number;
  benchmark: string;
  flags: string[];
}

/** A command runs to the end of its code span, its line, or a shell comment. */
const COMMAND = /node tests\/bench\/run\.mjs\s+([^\s`]+)([^`#\n]*)/g;

function commandsIn(text: string, line: number): Command[] {
  return [...text.matchAll(COMMAND)].map((match) => ({
    line,
    benchmark: match[1] ?? "",
    flags: [...(match[2] ?? "").matchAll(/--([a-z][a-z-]*)/g)].map((flag) => flag[1] ?? ""),
  }));
}

interface Section {
  heading: string;
  /** Commands between the heading and the end of the section, in order. */
  commands: Command[];
  tables: Array<{ line: number; commandsBefore: number }>;
}

/** The doc split at its headings (outside code fences), with each section's commands and tables. */
function sections(markdown: string): Section[] {
  const found: Section[] = [{ heading: "(before the first heading)", commands: [], tables: [] }];
  let fenced = false;
  let inTable = false;
  markdown.split("\n").forEach((text, index) => {
    const line = index + 1;
    const section = found[found.length - 1];
    if (!section) return;
    if (text.startsWith("```")) fenced = !fenced;
    if (!fenced && /^#{1,6} /.test(text)) {
      found.push({ heading: text, commands: [], tables: [] });
      inTable = false;
      return;
    }
    section.commands.push(...commandsIn(text, line));
    const tableRow = !fenced && text.startsWith("|");
    if (tableRow && !inTable) section.tables.push({ line, commandsBefore: section.commands.length });
    inTable = tableRow;
  });
  return found;
}

const parsed = sections(doc);
const tables = parsed.flatMap((s) => s.tables.map((t) => ({ ...t, heading: s.heading })));
const commands = parsed.flatMap((s) => s.commands);

describe(`${DOC_PATH}: every figure names the committed command that produced it`, () => {
  it("has figure tables and commands to check", () => {
    expect(tables.length).toBeGreaterThan(5);
    expect(commands.length).toBeGreaterThan(5);
  });

  it.each(tables.map((t) => [`the table at line ${t.line} (${t.heading})`, t] as const))(
    "%s has a command between its heading and itself",
    (_, table) => {
      expect(table.commandsBefore, "commands above it in its section").toBeGreaterThan(0);
    },
  );

  it.each(parsed.filter((s) => /latest figures/i.test(s.heading)).map((s) => [`${s.heading}`, s] as const))(
    "%s names a command",
    (_, section) => {
      expect(section.commands.length).toBeGreaterThan(0);
    },
  );

  it.each(commands.map((c) => [`${c.benchmark} (line ${c.line})`, c] as const))(
    "the command for %s names a benchmark run.mjs knows, with options it takes",
    (_, command) => {
      expect(Object.keys(known)).toContain(command.benchmark);
      const usage = known[command.benchmark] ?? "";
      for (const flag of command.flags) expect(usage, `--${flag}`).toContain(`--${flag} `);
    },
  );
});

describe("tests/bench/benchmarks.json", () => {
  it.each(Object.entries(known))("%s lists options its source parses", (name, usage) => {
    const source = readFileSync(new URL(`../tests/bench/${name}.ts`, import.meta.url), "utf8");
    const flags = [...usage.matchAll(/--([a-z][a-z-]*)/g)].map((m) => m[1] ?? "");
    expect(flags.length).toBeGreaterThan(0);
    for (const flag of flags) expect(source, `--${flag}`).toMatch(new RegExp(`["\\s{]${flag}"?: \\{ type:`));
  });
});
