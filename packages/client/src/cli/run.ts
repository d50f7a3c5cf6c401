// sbx: the command line for sbx sessions, built on @sbx/client (entry: main.ts).
import { parseArgs } from "node:util";
import { SandboxClient } from "../client.js";
import { SandboxError } from "../errors.js";
import { type Command, helpOf } from "./command.js";
import { cp } from "./commands/cp.js";
import { attach, exec } from "./commands/exec.js";
import { create, env, extend, get, list, remove, resume, stop } from "./commands/sessions.js";
import { UsageError } from "./duration.js";

const COMMANDS: Command[] = [create, list, get, stop, resume, remove, extend, exec, attach, cp, env];

const GLOBAL_OPTIONS = {
  url: { type: "string" },
  "key-id": { type: "string" },
  secret: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    "sbx — persistent sandbox sessions for coding agents",
    "",
    "Usage: sbx [--url URL] [--key-id ID] [--secret SECRET] [--json] COMMAND [ARGS...]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    "",
    'Configuration: SBX_URL (default http://127.0.0.1:8080), SBX_KEY_ID (default "default"),',
    "SBX_SECRET (the spawner's signing secret), or the flags above. --json prints data for scripts.",
    "",
    "Examples:",
    "  export SBX_URL=http://127.0.0.1:8080 SBX_SECRET=sbx-dev-secret-0123456789abcdef",
    "  id=$(sbx create --org acme --ttl 2h)",
    "  sbx exec $id -- git clone https://github.com/example/repo.git",
    "  sbx cp ./patch.diff $id:repo/",
    "  sbx rm $id",
    "",
    "`sbx COMMAND --help` explains each command, with examples.",
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  const major = Number(process.versions.node.split(".")[0]);
  if (!("Bun" in globalThis) && major < 22) {
    throw new UsageError(`sbx needs Node 22 or newer (this is ${process.version})`);
  }
  // Everything after the command name belongs to it; `--` ends option parsing (for exec).
  const index = argv.findIndex((arg) => !arg.startsWith("-") && !isGlobalValue(argv, arg));
  const globals = parseArgs({ args: index < 0 ? argv : argv.slice(0, index), options: GLOBAL_OPTIONS, strict: true });
  const name = index < 0 ? undefined : argv[index];
  const rest = index < 0 ? [] : argv.slice(index + 1);
  if (name === undefined || name === "help") {
    const topic = rest[0] === undefined ? undefined : COMMANDS.find((c) => c.name === rest[0]);
    process.stdout.write(`${topic ? helpOf(topic) : overview()}\n`);
    return name === undefined && globals.values.help !== true ? 2 : 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(name)}; sbx --help lists them`);
  try {
    return await runCommand(command, rest, globals.values);
  } catch (error) {
    const usage = asUsageError(error);
    if (!usage) throw error;
    usage.usage ??= command.usage;
    throw usage;
  }
}

async function runCommand(command: Command, rest: string[], globals: Record<string, unknown>): Promise<number> {
  const parsed = parseArgs({
    args: rest,
    options: { ...GLOBAL_OPTIONS, ...command.spec },
    allowPositionals: true,
    strict: true,
  });
  const values: Record<string, unknown> = { ...globals, ...parsed.values };
  if (values.help === true) {
    process.stdout.write(`${helpOf(command)}\n`);
    return 0;
  }
  const secret = text(values.secret) ?? process.env.SBX_SECRET;
  if (!secret) throw new UsageError("no signing secret: set SBX_SECRET or pass --secret");
  const client = new SandboxClient({
    baseUrl: text(values.url) ?? process.env.SBX_URL ?? "http://127.0.0.1:8080",
    keyId: text(values["key-id"]) ?? process.env.SBX_KEY_ID,
    secret,
  });
  return command.run({ client, json: values.json === true }, values, parsed.positionals);
}

/** Our usage errors, and parseArgs' (unknown option, missing value). */
function asUsageError(error: unknown): UsageError | undefined {
  if (error instanceof UsageError) return error;
  if (error instanceof TypeError && "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS")) {
    return new UsageError(error.message);
  }
  return undefined;
}

function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** True when `arg` is the value of a global option given before the command (`--url URL`). */
function isGlobalValue(argv: string[], arg: string): boolean {
  const previous = argv[argv.indexOf(arg) - 1];
  return previous === "--url" || previous === "--key-id" || previous === "--secret";
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const usage = asUsageError(error);
    if (usage) {
      process.stderr.write(`sbx: ${usage.message}\n${usage.usage ? `Usage: ${usage.usage}` : "See sbx --help."}\n`);
      process.exitCode = 2;
    } else if (error instanceof SandboxError) {
      process.stderr.write(`sbx: ${error.message} (${error.code})\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`sbx: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exitCode = 1;
    }
  },
);
