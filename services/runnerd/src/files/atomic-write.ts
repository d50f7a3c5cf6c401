import { createHash, randomBytes } from "node:crypto";
import { lstat, open, rename, rm } from "node:fs/promises";
import path from "node:path";
import { ApiError } from "@sbx/protocol";
import { isErrno } from "../exec/process-tree.js";

export interface WriteResult {
  size: number;
  sha256: string;
}

export interface AtomicWriteOptions {
  /** Permission bits; default: those of the file being replaced, else 0644. */
  mode: number | undefined;
  maxBytes: number;
  /** The error to raise when the source exceeds maxBytes. */
  tooLarge: () => ApiError;
  /** When given, the content must hash to this (hex) or nothing is written. */
  expectSha256?: string | undefined;
}

/**
 * Streams `source` into a temporary file beside `target` and renames it into
 * place only when complete (and verified), so readers see the old file or the
 * new one, never a torn one, and a failed write leaves nothing behind.
 */
export async function writeAtomically(
  target: string,
  source: AsyncIterable<Uint8Array>,
  options: AtomicWriteOptions,
): Promise<WriteResult> {
  const previousMode = await existingFileMode(target);
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.sbx-${randomBytes(6).toString("hex")}.tmp`);
  const handle = await open(temp, "wx", 0o600);
  let closed = false;
  try {
    const hash = createHash("sha256");
    let size = 0;
    for await (const chunk of source) {
      size += chunk.length;
      if (size > options.maxBytes) throw options.tooLarge();
      hash.update(chunk);
      await handle.write(chunk);
    }
    const sha256 = hash.digest("hex");
    if (options.expectSha256 !== undefined && options.expectSha256.toLowerCase() !== sha256) {
      throw new ApiError("CHECKSUM_MISMATCH", `content sha256 is ${sha256}, expected ${options.expectSha256}`);
    }
    await handle.chmod(options.mode ?? previousMode ?? 0o644);
    closed = true;
    await handle.close();
    await rename(temp, target);
    return { size, sha256 };
  } catch (error) {
    if (!closed) await handle.close();
    await rm(temp, { force: true });
    throw error;
  }
}

async function existingFileMode(target: string): Promise<number | undefined> {
  try {
    const info = await lstat(target);
    if (info.isDirectory()) throw new ApiError("IS_A_DIRECTORY", `${path.basename(target)} is a directory`);
    return info.isFile() ? info.mode & 0o7777 : undefined;
  } catch (error) {
    if (isErrno(error, "ENOENT")) return undefined;
    throw error;
  }
}
