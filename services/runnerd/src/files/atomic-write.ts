import { createHash, randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { chmod, lstat, rename, rm } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { ApiError } from "@sbx/protocol";
import { isErrno } from "../exec/process-tree.js";

/** Bytes an upload may have queued for the disk before the body is read on. */
const WRITE_QUEUE_BYTES = 4 * 1024 * 1024;

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
  const hash = createHash("sha256");
  let size = 0;
  try {
    // A write stream queues what arrives while a write is under way and writes it in one writev:
    // the body is read and the disk written at once, in few large calls.
    await pipeline(
      source,
      async function* (chunks: AsyncIterable<Uint8Array>) {
        for await (const chunk of chunks) {
          size += chunk.length;
          if (size > options.maxBytes) throw options.tooLarge();
          hash.update(chunk);
          yield chunk;
        }
      },
      createWriteStream(temp, { flags: "wx", mode: 0o600, highWaterMark: WRITE_QUEUE_BYTES }),
    );
    const sha256 = hash.digest("hex");
    if (options.expectSha256 !== undefined && options.expectSha256.toLowerCase() !== sha256) {
      throw new ApiError("CHECKSUM_MISMATCH", `content sha256 is ${sha256}, expected ${options.expectSha256}`);
    }
    await chmod(temp, options.mode ?? previousMode ?? 0o644);
    await rename(temp, target);
    return { size, sha256 };
  } catch (error) {
    // The pipeline has closed the file by now (it destroys every stream on failure).
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
