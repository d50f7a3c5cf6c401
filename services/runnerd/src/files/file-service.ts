import { createReadStream, type Stats } from "node:fs";
import { cp, lstat, mkdir, readdir, readlink, rename, rm, rmdir, stat } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { ApiError, type FileInfo } from "@sbx/protocol";
import { isErrno } from "../exec/process-tree.js";
import { type WriteResult, writeAtomically } from "./atomic-write.js";
import { onPath } from "./fs-errors.js";
import { isWithin, RESERVED_DIR, type WorkspaceRoot } from "./workspace-root.js";

/** How much a file read hands on at once. */
export const TRANSFER_CHUNK_BYTES = 1024 * 1024;

/** Entries one listing returns at most; past it the listing says `truncated`. */
export const LIST_MAX_ENTRIES = 10_000;

export interface ReadHandle {
  stream: Readable;
  size: number;
  mtimeMs: number;
}

/** File operations on the workspace, each confined by the WorkspaceRoot. */
export class FileService {
  constructor(
    private readonly root: WorkspaceRoot,
    private readonly maxFileBytes: number,
  ) {}

  async stat(input: string): Promise<FileInfo> {
    const p = await this.root.existing(input, { follow: false });
    return onPath(p.rel, async () => describe(p.abs, p.rel, await lstat(p.abs)));
  }

  async list(input: string, depth: number): Promise<{ path: string; entries: FileInfo[]; truncated: boolean }> {
    const p = await this.root.existing(input, { follow: true });
    return onPath(p.rel, async () => {
      if (!(await stat(p.abs)).isDirectory()) throw new ApiError("NOT_A_DIRECTORY", `${p.rel}: not a directory`);
      const entries: FileInfo[] = [];
      let truncated = false;
      const walk = async (dir: string, level: number): Promise<void> => {
        const names = (await readdir(dir)).sort();
        for (const name of names) {
          if (dir === this.root.real && name === RESERVED_DIR) continue;
          if (entries.length >= LIST_MAX_ENTRIES) {
            truncated = true;
            return;
          }
          const abs = path.join(dir, name);
          let info: Stats;
          try {
            info = await lstat(abs);
          } catch (error) {
            if (isErrno(error, "ENOENT")) continue; // removed while we listed
            throw error;
          }
          entries.push(await describe(abs, this.root.relative(abs), info));
          // Symlinked directories are listed, not entered: they may lead anywhere.
          if (info.isDirectory() && level < depth) await walk(abs, level + 1);
        }
      };
      await walk(p.abs, 1);
      return { path: p.rel, entries, truncated };
    });
  }

  async openRead(input: string): Promise<ReadHandle> {
    const p = await this.root.existing(input, { follow: true });
    return onPath(p.rel, async () => {
      const info = await stat(p.abs);
      if (info.isDirectory()) throw new ApiError("IS_A_DIRECTORY", `${p.rel}: is a directory (use the archive route)`);
      if (!info.isFile()) throw new ApiError("VALIDATION_FAILED", `${p.rel}: not a regular file`);
      // Reads of 1 MiB: a tenth of the reads (and of the chunks every layer above handles) of the default.
      const stream = createReadStream(p.abs, { highWaterMark: TRANSFER_CHUNK_BYTES });
      // Opening happens asynchronously; surface a failure before the response starts.
      await new Promise<void>((resolve, reject) => {
        stream.once("open", () => resolve());
        stream.once("error", reject);
      });
      return { stream, size: info.size, mtimeMs: info.mtimeMs };
    });
  }

  async write(
    input: string,
    body: AsyncIterable<Uint8Array>,
    options: { mode?: number | undefined; declaredLength?: number | undefined },
  ): Promise<WriteResult & { path: string }> {
    const tooLarge = () =>
      new ApiError("FILE_TOO_LARGE", `file exceeds the limit of ${this.maxFileBytes} bytes`, {
        details: { maxBytes: this.maxFileBytes },
      });
    if (options.declaredLength !== undefined && options.declaredLength > this.maxFileBytes) throw tooLarge();
    return this.root.create(input, async (p) => {
      const result = await onPath(p.rel, () =>
        writeAtomically(p.abs, body, { mode: options.mode, maxBytes: this.maxFileBytes, tooLarge }),
      );
      return { path: p.rel, ...result };
    });
  }

  async remove(input: string, recursive: boolean): Promise<{ path: string }> {
    const p = await this.root.existing(input, { follow: false });
    if (p.rel === ".") throw new ApiError("INVALID_PATH", "the workspace root itself cannot be deleted");
    await onPath(p.rel, async () => {
      const info = await lstat(p.abs);
      if (!info.isDirectory()) await rm(p.abs);
      else if (recursive) await rm(p.abs, { recursive: true });
      else await rmdir(p.abs);
    });
    return { path: p.rel };
  }

  async mkdir(input: string): Promise<{ path: string; created: boolean }> {
    const p = this.root.lexical(input);
    if (p.rel === ".") return { path: ".", created: false };
    await this.root.forCreate(input, { makeParents: true });
    return onPath(p.rel, async () => {
      try {
        await mkdir(p.abs);
        return { path: p.rel, created: true };
      } catch (error) {
        if (isErrno(error, "EEXIST") && (await stat(p.abs)).isDirectory()) {
          await this.root.existing(input, { follow: true });
          return { path: p.rel, created: false };
        }
        throw error;
      }
    });
  }

  async move(from: string, to: string, overwrite: boolean): Promise<{ from: string; to: string }> {
    const source = await this.root.existing(from, { follow: false });
    if (source.rel === ".") throw new ApiError("INVALID_PATH", "the workspace root itself cannot be moved");
    return this.root.create(to, async (target) => {
      if (isWithin(source.abs, target.abs) && source.abs !== target.abs) {
        throw new ApiError("INVALID_PATH", `cannot move ${source.rel} into itself`);
      }
      await onPath(source.rel, () => lstat(source.abs));
      await onPath(target.rel, async () => {
        const existing = await lstat(target.abs).catch((error: unknown) => {
          if (isErrno(error, "ENOENT")) return undefined;
          throw error;
        });
        if (existing && !overwrite)
          throw new ApiError("ALREADY_EXISTS", `${target.rel} already exists (overwrite: true replaces it)`);
        try {
          await rename(source.abs, target.abs);
        } catch (error) {
          // Across mount points inside the workspace rename cannot work: copy, then remove.
          if (!isErrno(error, "EXDEV")) throw error;
          await cp(source.abs, target.abs, {
            recursive: true,
            force: overwrite,
            errorOnExist: !overwrite,
            verbatimSymlinks: true,
          });
          await rm(source.abs, { recursive: true });
        }
      });
      return { from: source.rel, to: target.rel };
    });
  }
}

export async function describe(abs: string, rel: string, info: Stats): Promise<FileInfo> {
  const type = info.isFile() ? "file" : info.isDirectory() ? "directory" : info.isSymbolicLink() ? "symlink" : "other";
  return {
    path: rel,
    name: rel === "." ? "." : path.basename(abs),
    type,
    size: info.size,
    mode: (info.mode & 0o7777).toString(8).padStart(4, "0"),
    mtimeMs: info.mtimeMs,
    ...(type === "symlink" ? { target: await readlink(abs) } : {}),
  };
}
