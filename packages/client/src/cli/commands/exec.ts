import { constants } from "node:os";
import type { ExecEvent, ExecRequest, ExitData } from "@sbx/protocol";
import { ConflictError } from "../../errors.js";
import type { ExecHandle } from "../../exec-handle.js";
import { type Command, listOption, pairs, requirePositional, stringOption } from "../command.js";
import { parseDuration, UsageError } from "../duration.js";

/** The local exit code for a remote exit: its code, 128+signal, 127/126 when it could not start, 124 on timeout. */
export function exitCodeOf(exit: ExitData): number {
  if (exit.exitCode !== null) return exit.exitCode;
  if (exit.error?.code === "COMMAND_NOT_FOUND") return 127;
  if (exit.error?.code === "COMMAND_NOT_EXECUTABLE") return 126;
  if (exit.outcome === "timeout") return 124;
  const number = Object.entries(constants.signals).find(([name]) => name === exit.signal)?.[1];
  return number === undefined ? 1 : 128 + number;
}

/**
 * Copies an exec's output to this process's stdout and stderr as bytes,
 * lets Ctrl-C cancel the remote exec (a second Ctrl-C leaves at once), and
 * resolves with the local exit code.
 */
export async function follow(handle: ExecHandle, json: boolean): Promise<number> {
  let interrupts = 0;
  const onInterrupt = () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write("\nsbx: cancelling the remote command (Ctrl-C again to leave now)\n");
    handle.cancel("SIGINT", 3000).catch((error: unknown) => {
      process.stderr.write(`sbx: could not cancel: ${error instanceof Error ? error.message : String(error)}\n`);
    });
  };
  process.on("SIGINT", onInterrupt);
  try {
    let exit: ExitData | undefined;
    for await (const event of handle) {
      if (json) process.stdout.write(`${JSON.stringify(event)}\n`);
      else write(event);
      if (event.type === "exit") exit = event.data;
    }
    if (!exit) return 1;
    if (exit.error && !json) process.stderr.write(`sbx: ${exit.error.message}\n`);
    return exitCodeOf(exit);
  } finally {
    process.off("SIGINT", onInterrupt);
  }
}

function write(event: ExecEvent): void {
  if (event.type === "stdout" || event.type === "stderr") {
    const bytes = "data" in event.data ? Buffer.from(event.data.data, "base64") : Buffer.from(event.data.text);
    (event.type === "stdout" ? process.stdout : process.stderr).write(bytes);
  } else if (event.type === "gap") {
    process.stderr.write(
      `\nsbx: output events ${event.data.fromSeq}-${event.data.toSeq} were evicted before they could be read\n`,
    );
  }
}

/** Streams this process's stdin to the exec's, then closes it. */
async function pumpStdin(handle: ExecHandle): Promise<void> {
  for await (const chunk of process.stdin) {
    const bytes = chunk instanceof Uint8Array ? chunk : Buffer.from(String(chunk));
    // Bounded pieces keep each request small.
    for (let at = 0; at < bytes.length; at += 256 * 1024) await handle.writeStdin(bytes.subarray(at, at + 256 * 1024));
  }
  await handle.closeStdin();
}

export const exec: Command = {
  name: "exec",
  summary: "Run a command in a session, with its output live here and its exit code as ours.",
  usage: "sbx exec ID [--cwd DIR] [--env K=V]... [--timeout 10m] [--detach] -- CMD [ARGS...]",
  options: [
    "--cwd DIR          working directory (relative to the workspace)",
    "--env K=V          environment for this command only (repeatable)",
    "--timeout DURATION end the command after this long",
    "--tag TAG          a tag to find it by later",
    "--id EXEC_ID       choose the exec id",
    "--shell            run CMD as a shell command line (bash -lc)",
    "--detach           start it, print its exec id and leave (it keeps running; see `sbx attach`)",
    "--orphan-timeout D how long a detached command may run with nobody attached (default 7d)",
    "Local stdin is passed on when it is not a terminal. Ctrl-C cancels the remote command.",
  ],
  examples: [
    "sbx exec demo -- npm test",
    "sbx exec demo --cwd app -- git status --short",
    "sbx exec demo --shell -- 'make -j4 2>&1 | tail -n 20'",
    "sbx exec demo --detach --tag server -- python -m http.server 8000",
    "tar c src | sbx exec demo -- tar x -C /workspace",
  ],
  spec: {
    cwd: { type: "string" },
    env: { type: "string", multiple: true },
    timeout: { type: "string" },
    tag: { type: "string" },
    id: { type: "string" },
    shell: { type: "boolean" },
    detach: { type: "boolean" },
    "orphan-timeout": { type: "string" },
  },
  async run(context, values, positionals) {
    const session = context.client.session(requirePositional(positionals, 0, "session ID"));
    const command = positionals.slice(1);
    if (command.length === 0) throw new UsageError("missing the command: sbx exec ID -- CMD [ARGS...]");
    const detach = values.detach === true;
    const withStdin = !detach && process.stdin.isTTY !== true;
    const env = pairs(listOption(values, "env"), "--env");
    const cwd = stringOption(values, "cwd");
    const timeout = stringOption(values, "timeout");
    const tag = stringOption(values, "tag");
    const execId = stringOption(values, "id");
    const orphan = stringOption(values, "orphan-timeout") ?? (detach ? "7d" : undefined);
    const request: ExecRequest = {
      ...(values.shell === true ? { shell: command.join(" ") } : { argv: command }),
      // Bytes, not text: output reaches this terminal or file exactly as the command wrote it.
      encoding: "base64",
      ...(cwd === undefined ? {} : { cwd }),
      ...(Object.keys(env).length > 0 ? { env } : {}),
      ...(timeout === undefined ? {} : { timeoutMs: parseDuration(timeout) }),
      ...(orphan === undefined ? {} : { orphanTimeoutMs: Math.min(parseDuration(orphan), 2_147_483_647) }),
      ...(tag === undefined ? {} : { tag }),
      ...(execId === undefined ? {} : { execId }),
      ...(withStdin ? { stdin: { mode: "hold" as const } } : {}),
    };
    const handle = await session.exec(request, { maxReconnects: 30 });
    if (detach) {
      process.stdout.write(`${context.json ? JSON.stringify({ execId: handle.execId }) : handle.execId}\n`);
      return 0;
    }
    if (withStdin) {
      pumpStdin(handle).catch((error: unknown) => {
        // The command ended, or closed its stdin, before reading all of ours: not an error.
        if (error instanceof ConflictError) return;
        process.stderr.write(`sbx: stdin: ${error instanceof Error ? error.message : String(error)}\n`);
      });
    }
    return follow(handle, context.json);
  },
};

export const attach: Command = {
  name: "attach",
  summary: "Follow a running (or finished) command: its output from the start, or after an event.",
  usage: "sbx attach ID EXEC_ID [--after N]",
  options: ["--after N   start after event N (the SSE id); default: from the start"],
  examples: ["sbx attach demo 3f2a9c1b7d4e5f60", "sbx attach demo build --after 120"],
  spec: { after: { type: "string" } },
  async run(context, values, positionals) {
    const session = context.client.session(requirePositional(positionals, 0, "session ID"));
    const execId = requirePositional(positionals, 1, "EXEC_ID");
    const afterText = stringOption(values, "after");
    const after = afterText === undefined ? 0 : Number(afterText);
    if (!Number.isInteger(after) || after < 0) throw new UsageError("--after must be a whole number");
    return follow(session.attach(execId, { after, maxReconnects: 30 }), context.json);
  },
};
