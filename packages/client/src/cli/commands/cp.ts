import { stat } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { FileNotFoundError } from "../../errors.js";
import type { SessionHandle } from "../../session.js";
import { type Command, type Context, requirePositional } from "../command.js";
import { UsageError } from "../duration.js";
import { formatBytes } from "../output.js";
import { Progress } from "../progress.js";

/** `ID:PATH` names a session path; anything else (start it with ./ when it holds a colon) is local. */
export function parseLocation(text: string): { session: string; path: string } | { local: string } {
  const match = /^([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?):(.*)$/.exec(text);
  if (!match || text.startsWith("./") || text.startsWith("/")) return { local: text };
  return { session: match[1] ?? "", path: match[2] === "" ? "." : (match[2] ?? ".") };
}

export const cp: Command = {
  name: "cp",
  summary: "Copy files or directories into or out of a session (directories travel as tar, streamed).",
  usage: "sbx cp LOCAL ID:PATH | sbx cp ID:PATH LOCAL",
  options: [
    "Directories are copied whole; a file copied onto an existing directory goes inside it.",
    "LOCAL may be - for stdin or stdout. A progress bar shows on a terminal for transfers that take a while.",
  ],
  examples: [
    "sbx cp ./src demo:src",
    "sbx cp dataset.parquet demo:data/",
    "sbx cp demo:build/report.html .",
    "sbx cp demo:logs ./logs",
    "sbx cp demo:out.json - | jq .",
  ],
  spec: {},
  async run(context, _values, positionals) {
    const from = parseLocation(requirePositional(positionals, 0, "source"));
    const to = parseLocation(requirePositional(positionals, 1, "destination"));
    if ("local" in from && "session" in to)
      return upload(context, from.local, context.client.session(to.session), to.path);
    if ("session" in from && "local" in to)
      return download(context, context.client.session(from.session), from.path, to.local);
    throw new UsageError("copy between this machine and a session: exactly one side must be ID:PATH");
  },
};

async function upload(context: Context, local: string, session: SessionHandle, remote: string): Promise<number> {
  if (local === "-") {
    const result = await session.writeFile(remote, Readable.toWeb(process.stdin));
    report(context, `${formatBytes(result.size)} -> ${session.id}:${result.path}`, result);
    return 0;
  }
  const info = await stat(local);
  const remoteIsDir = await session.stat(remote).then(
    (s) => s.type === "directory",
    (error: unknown) => {
      if (error instanceof FileNotFoundError) return false;
      throw error;
    },
  );
  if (info.isDirectory()) {
    // Like cp -r: into an existing directory it goes inside, under its own name.
    const target = remoteIsDir ? path.posix.join(remote, path.basename(path.resolve(local))) : remote;
    const progress = new Progress(`${local} -> ${session.id}:${target}`, undefined);
    const result = await session.uploadDirectory(local, target, { onProgress: (p) => progress.update(p.bytes) });
    progress.done();
    report(context, `${result.entries} entries, ${formatBytes(result.bytes)} -> ${session.id}:${result.path}`, result);
    return 0;
  }
  const target = remoteIsDir || remote.endsWith("/") ? path.posix.join(remote, path.basename(local)) : remote;
  const progress = new Progress(`${local} -> ${session.id}:${target}`, info.size);
  const result = await session.uploadFile(local, target, {
    mode: (info.mode & 0o777).toString(8).padStart(4, "0"),
    onProgress: (bytes) => progress.update(bytes),
  });
  progress.done();
  report(context, `${formatBytes(result.size)} -> ${session.id}:${result.path}`, result);
  return 0;
}

async function download(context: Context, session: SessionHandle, remote: string, local: string): Promise<number> {
  const info = await session.stat(remote);
  if (info.type === "directory") {
    if (local === "-")
      throw new UsageError("a directory cannot go to stdout (use the archive: sbx exec ID -- tar c DIR)");
    const localIsDir = await stat(local).then(
      (s) => s.isDirectory(),
      () => false,
    );
    const target = localIsDir
      ? path.join(local, path.posix.basename(info.path === "." ? session.id : info.path))
      : local;
    const progress = new Progress(`${session.id}:${info.path} -> ${target}`, undefined);
    const result = await session.downloadDirectory(remote, target, { onProgress: (p) => progress.update(p.bytes) });
    progress.done();
    report(context, `${result.entries} entries, ${formatBytes(result.bytes)} -> ${target}`, {
      path: target,
      ...result,
    });
    return 0;
  }
  if (local === "-") {
    await pipeline(Readable.fromWeb(await session.readFile(remote)), process.stdout);
    return 0;
  }
  const localIsDir = await stat(local).then(
    (s) => s.isDirectory(),
    () => false,
  );
  const target = localIsDir ? path.join(local, info.name) : local;
  const progress = new Progress(`${session.id}:${info.path} -> ${target}`, info.size);
  const received = await session.downloadFile(remote, target, {
    mode: Number.parseInt(info.mode, 8) & 0o777,
    onProgress: (bytes) => progress.update(bytes),
  });
  progress.done();
  report(context, `${formatBytes(received)} -> ${target}`, { path: target, size: received });
  return 0;
}

function report(context: Context, human: string, data: unknown): void {
  // Human summaries go to stderr, so stdout stays clean for pipes.
  if (context.json) process.stdout.write(`${JSON.stringify(data)}\n`);
  else if (process.stderr.isTTY) process.stderr.write(`${human}\n`);
}
