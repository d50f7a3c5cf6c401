import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import {
  chmod,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  readlink,
  realpath,
  rename,
  rm,
  rmdir,
  symlink,
  utimes,
} from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import type { Logger } from "@sbx/edge";
import { ApiError, packTree, tarBytes } from "@sbx/protocol";
import * as tar from "tar-stream";
import { isErrno } from "../exec/process-tree.js";
import { onPath } from "./fs-errors.js";
import { isWithin, RESERVED_DIR, type WorkspacePath, type WorkspaceRoot } from "./workspace-root.js";

/** Entries one extraction accepts at most. */
export const EXTRACT_MAX_ENTRIES = 100_000;

export interface ExtractResult {
  path: string;
  entries: number;
  bytes: number;
}

/** Directories as tar streams, both ways, confined to the workspace. */
export class ArchiveService {
  constructor(
    private readonly root: WorkspaceRoot,
    private readonly maxBytes: number,
    private readonly log: Logger,
  ) {}

  /**
   * A tar stream of a directory (entries relative to it) or of a single file.
   * Symlinks are stored as links, never followed; sockets and devices are skipped.
   */
  async pack(input: string): Promise<ReadableStream<Uint8Array>> {
    const p = await this.root.existing(input, { follow: true });
    await onPath(p.rel, () => lstat(p.abs));
    return packTree(p.abs, {
      onError: (error) => this.log.warn({ path: p.rel, err: error }, "archive stream failed"),
      ...(p.rel === "." ? { exclude: new Set([RESERVED_DIR]) } : {}),
    });
  }

  /**
   * Extracts a tar (or gzipped tar) stream into a directory, all or nothing:
   * entries land in a staging directory first and are merged into place only
   * when the whole archive was read and every entry accepted. Entries that
   * would escape the target, links pointing outside the workspace, and
   * devices or FIFOs refuse the whole archive.
   */
  async extract(input: string, body: AsyncIterable<Uint8Array>): Promise<ExtractResult> {
    const requested = this.root.lexical(input);
    if (requested.rel === ".") return this.extractInto(requested, body);
    return this.root.create(input, async (target) => {
      const made = await onPath(target.rel, () => mkdir(target.abs, { recursive: true }));
      try {
        await this.root.existing(input, { follow: true });
        return await this.extractInto(target, body);
      } catch (error) {
        // The target directory was made for this archive: a refused archive takes it away again.
        if (made !== undefined) await rmdir(target.abs).catch((cause: unknown) => this.log.debug({ err: cause }));
        throw error;
      }
    });
  }

  private async extractInto(target: WorkspacePath, body: AsyncIterable<Uint8Array>): Promise<ExtractResult> {
    const staging = path.join(target.abs, `.sbx-extract-${randomBytes(6).toString("hex")}`);
    await mkdir(staging, { mode: 0o700 });
    try {
      const counts = await this.unpackInto(staging, target.abs, body);
      await merge(staging, target.abs);
      return { path: target.rel, ...counts };
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }

  private async unpackInto(
    staging: string,
    finalDir: string,
    body: AsyncIterable<Uint8Array>,
  ): Promise<{ entries: number; bytes: number }> {
    const extractor = tar.extract();
    const { source, gzipped } = await sniffGzip(body);
    const feeding = gzipped ? pipeline(source, createGunzip(), extractor) : pipeline(source, extractor);
    // If the input ends early or is not tar, the iteration below sees it as an error.
    feeding.catch((error: unknown) => extractor.destroy(error instanceof Error ? error : new Error(String(error))));
    /** Symbolic links of this archive (entry name → link text) and every other entry name. */
    const links = new Map<string, string>();
    const others = new Set<string>();
    let entries = 0;
    let bytes = 0;
    try {
      for await (const entry of extractor) {
        const header = entry.header;
        const name = entryName(header.name);
        if (name === undefined) {
          entry.resume();
          continue;
        }
        if (++entries > EXTRACT_MAX_ENTRIES) {
          throw new ApiError("PAYLOAD_TOO_LARGE", `archive has more than ${EXTRACT_MAX_ENTRIES} entries`);
        }
        refuseThroughLink(name, name, links);
        const dest = path.join(staging, name);
        if (header.type !== "symlink") others.add(name);
        await mkdir(path.dirname(dest), { recursive: true });
        switch (header.type) {
          case "directory":
            await mkdir(dest, { recursive: true, mode: ((header.mode ?? 0o755) & 0o777) | 0o700 });
            entry.resume();
            break;
          case "file":
          case "contiguous-file": {
            const mode = (header.mode ?? 0o644) & 0o777;
            // O_NOFOLLOW: never write through a link, even one this archive created.
            const handle = await open(
              dest,
              constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
              mode,
            );
            try {
              for await (const chunk of tarBytes(entry)) {
                bytes += chunk.length;
                if (bytes > this.maxBytes) {
                  throw new ApiError("FILE_TOO_LARGE", `archive content exceeds the limit of ${this.maxBytes} bytes`);
                }
                await handle.write(chunk);
              }
              await handle.chmod(mode);
            } finally {
              await handle.close();
            }
            if (header.mtime) await utimes(dest, header.mtime, header.mtime);
            break;
          }
          case "symlink": {
            const linkname = header.linkname ?? "";
            const pointsTo = path.resolve(path.dirname(path.join(finalDir, name)), linkname);
            if (linkname === "" || !isWithin(this.root.real, pointsTo)) {
              refuse(name, `symbolic link to ${JSON.stringify(linkname)} points outside the workspace`);
            }
            await symlink(linkname, dest);
            links.set(name, linkname);
            entry.resume();
            break;
          }
          case "link": {
            const source = entryName(header.linkname ?? "");
            if (source === undefined) refuse(name, "hard link outside the archive");
            // link() follows symlinks in the source's parents, which could lead anywhere.
            refuseThroughLink(name, source, links);
            const sourceInfo = await lstat(path.join(staging, source)).catch((error: unknown) => {
              if (isErrno(error, "ENOENT") || isErrno(error, "ENOTDIR")) return undefined;
              throw error;
            });
            if (!sourceInfo?.isFile())
              refuse(name, `hard link to ${source}, which is not a file earlier in the archive`);
            await link(path.join(staging, source), dest);
            entry.resume();
            break;
          }
          default:
            refuse(name, `${header.type ?? "unknown"} entries are not allowed`);
        }
      }
      await feeding;
      await this.checkLinkTargets(finalDir, links, others);
    } catch (error) {
      if (error instanceof ApiError) throw error;
      if (isErrno(error, "EEXIST") || isErrno(error, "ELOOP") || isErrno(error, "ENOTDIR")) {
        throw new ApiError("ARCHIVE_REFUSED", "archive entries conflict with each other", { cause: error });
      }
      const message = error instanceof Error ? error.message : String(error);
      throw new ApiError("VALIDATION_FAILED", `not a valid tar archive: ${message}`, { cause: error });
    }
    return { entries, bytes };
  }

  /**
   * Resolves every symbolic link of the archive as it will stand once merged,
   * following the archive's own links and those already in the workspace, and
   * refuses the archive if any walk leaves the workspace or loops: a chain of
   * individually harmless links must not add up to a way out.
   */
  private async checkLinkTargets(finalDir: string, links: Map<string, string>, others: Set<string>): Promise<void> {
    if (links.size === 0) return;
    const root = this.root.real;
    const base = await realpath(finalDir);
    const archiveLinks = new Map([...links].map(([name, text]) => [path.join(base, name), text]));
    const archiveEntries = new Set([...others].map((name) => path.join(base, name)));
    let hops = 0;
    const linkAt = async (abs: string): Promise<string | undefined> => {
      const own = archiveLinks.get(abs);
      if (own !== undefined || archiveEntries.has(abs)) return own;
      try {
        return (await lstat(abs)).isSymbolicLink() ? await readlink(abs) : undefined;
      } catch (error) {
        if (isErrno(error, "ENOENT") || isErrno(error, "ENOTDIR")) return undefined;
        throw error;
      }
    };
    /** Walks `text` from directory `from`; undefined as soon as it leaves the root. */
    const walk = async (from: string, text: string): Promise<string | undefined> => {
      let current = from;
      let rest = text;
      if (path.isAbsolute(text)) {
        const inside = [this.root.configured, root].find((prefix) => isWithin(prefix, path.normalize(text)));
        // Absolute targets are followed only when they name the workspace plainly (no `..`).
        if (inside === undefined || text.split("/").includes("..")) return undefined;
        current = root;
        rest = path.relative(inside, text);
      }
      for (const part of rest.split("/")) {
        if (part === "" || part === ".") continue;
        current = part === ".." ? path.dirname(current) : path.join(current, part);
        if (!isWithin(root, current)) return undefined;
        if (part === "..") continue;
        const target = await linkAt(current);
        if (target === undefined) continue;
        if (++hops > 256) return undefined;
        const resolved = await walk(path.dirname(current), target);
        if (resolved === undefined) return undefined;
        current = resolved;
      }
      return current;
    };
    for (const [name, text] of links) {
      hops = 0;
      if ((await walk(path.dirname(path.join(base, name)), text)) === undefined) {
        refuse(name, `symbolic link to ${JSON.stringify(text)} leads outside the workspace through other links`);
      }
    }
  }
}

/** Normalises an entry name; undefined for the archive's own root (`./`); refuses escapes. */
function entryName(raw: string): string | undefined {
  if (raw.includes("\0")) refuse(raw, "name contains NUL");
  if (raw.startsWith("/")) refuse(raw, "absolute name");
  const name = path.posix.normalize(raw).replace(/\/+$/, "");
  if (name === "." || name === "") return undefined;
  if (name === ".." || name.startsWith("../")) refuse(raw, "name escapes the target directory");
  return name;
}

/** Refuses `entry` when `name` (itself or its hard-link source) lies beneath a symlink from the same archive. */
function refuseThroughLink(entry: string, name: string, links: { has(name: string): boolean }): void {
  for (let dir = path.posix.dirname(name); dir !== "."; dir = path.posix.dirname(dir)) {
    if (links.has(dir)) refuse(entry, `${name} lies beneath ${dir}, a symbolic link in the same archive`);
  }
}

function refuse(entry: string, reason: string): never {
  throw new ApiError("ARCHIVE_REFUSED", `archive entry ${JSON.stringify(entry)} refused: ${reason}`, {
    details: { entry, reason },
  });
}

/** Moves staged entries into place; existing directories are merged, anything else is replaced. */
async function merge(from: string, into: string): Promise<void> {
  for (const name of await readdir(from)) {
    const source = path.join(from, name);
    const dest = path.join(into, name);
    const sourceInfo = await lstat(source);
    const destInfo = await lstat(dest).catch((error: unknown) => {
      if (isErrno(error, "ENOENT")) return undefined;
      throw error;
    });
    if (sourceInfo.isDirectory() && destInfo?.isDirectory()) {
      await merge(source, dest);
      await chmod(dest, sourceInfo.mode & 0o7777);
      continue;
    }
    if (destInfo) await rm(dest, { recursive: true, force: true });
    await rename(source, dest);
  }
}

/** Looks at the first bytes for the gzip magic number, then hands back the whole body. */
async function sniffGzip(body: AsyncIterable<Uint8Array>): Promise<{ source: Readable; gzipped: boolean }> {
  const iterator = body[Symbol.asyncIterator]();
  const first = await iterator.next();
  async function* replay(): AsyncGenerator<Uint8Array> {
    if (first.done) return;
    yield first.value;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) yield next.value;
  }
  const head = first.done ? undefined : first.value;
  return { source: Readable.from(replay(), { objectMode: false }), gzipped: head?.[0] === 0x1f && head[1] === 0x8b };
}
