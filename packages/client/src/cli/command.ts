import type { parseArgs } from "node:util";
import type { SandboxClient } from "../client.js";
import { UsageError } from "./duration.js";

export interface Context {
  client: SandboxClient;
  /** --json: machine-readable output. */
  json: boolean;
}

type OptionSpec = NonNullable<Parameters<typeof parseArgs>[0]>["options"];

export interface Command {
  name: string;
  summary: string;
  /** `sbx NAME ...` line(s). */
  usage: string;
  /** Option lines for help. */
  options?: string[];
  examples: string[];
  spec: OptionSpec;
  /** Resolves with the process exit code. */
  run(context: Context, values: Record<string, unknown>, positionals: string[]): Promise<number>;
}

export function helpOf(command: Command): string {
  const lines = [`${command.summary}`, "", "Usage:", `  ${command.usage}`];
  if (command.options && command.options.length > 0)
    lines.push("", "Options:", ...command.options.map((o) => `  ${o}`));
  lines.push("", "Examples:", ...command.examples.map((e) => `  ${e}`));
  return lines.join("\n");
}

export function stringOption(values: Record<string, unknown>, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

export function listOption(values: Record<string, unknown>, name: string): string[] {
  const value = values[name];
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

/** `k=v` pairs into a record; refuses anything without `=`. */
export function pairs(items: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of items) {
    const at = item.indexOf("=");
    if (at <= 0) throw new UsageError(`${what} must be KEY=VALUE, got ${JSON.stringify(item)}`);
    out[item.slice(0, at)] = item.slice(at + 1);
  }
  return out;
}

export function requirePositional(positionals: string[], index: number, name: string): string {
  const value = positionals[index];
  if (value === undefined || value === "") throw new UsageError(`missing ${name}`);
  return value;
}
