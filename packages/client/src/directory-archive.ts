import { createWriteStream } from "node:fs";
import { mkdir, realpath, symlink } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { packTree, tarBytes } from "@sbx/protocol";
import * as tar from "tar-stream";

export interface TransferProgress {
  /** Bytes of file content moved so far. */
  bytes: number;
  /** Entries (files, directories, links) moved so far. */
  entries: number;
}

/**
 * A local directory (or file) as a tar stream, read from disk as it is sent:
 * nothing is held in memory beyond one chunk. Symlinks are stored as links;
 * sockets and devices are skipped.
 */
export function packDirectory(
  source: string,
  onProgress?: (progress: TransferProgress) => void,
): ReadableStream<Uint8Array> {
  const progress: TransferProgress = { bytes: 0, entries: 0 };
  return packTree(source, {
    onBytes: (bytes) => {
      progress.bytes += bytes;
      onProgress?.(progress);
    },
    onEntry: () => {
      progress.entries++;
      onProgress?.(progress);
    },
  });
}

/**
 * Extracts a tar stream into a local directory as it arrives. Entries that
 * would land outside the directory (absolute names, `..`, through a link)
 * and device entries are refused; links may only point inside it.
 */
export async function unpackDirectory(
  archive: ReadableStream<Uint8Array>,
  destination: string,
  onProgress?: (progress: TransferProgress) => void,
): Promise<TransferProgress> {
  await mkdir(destination, { recursive: true });
  const root = await realpath(destination);
  const extractor = tar.extract();
  const feeding = pipeline(Readable.fromWeb(archive), extractor);
  feeding.catch((error: unknown) => extractor.destroy(error instanceof Error ? error : new Error(String(error))));
  const progress: TransferProgress = { bytes: 0, entries: 0 };
  for await (const entry of extractor) {
    const header = entry.header;
    const name = path.posix.normalize(header.name).replace(/\/+$/, "");
    if (name === "." || name === "") {
      entry.resume();
      continue;
    }
    if (header.name.startsWith("/") || name === ".." || name.startsWith("../")) {
      throw new Error(`refusing archive entry ${JSON.stringify(header.name)}: outside the destination`);
    }
    const target = path.join(root, name);
    const parent = path.dirname(target);
    await mkdir(parent, { recursive: true });
    // A link extracted earlier must not lead the next entry out of the destination.
    const realParent = await realpath(parent);
    if (realParent !== root && !realParent.startsWith(`${root}/`)) {
      throw new Error(`refusing archive entry ${JSON.stringify(header.name)}: its directory leads outside`);
    }
    switch (header.type) {
      case "directory":
        await mkdir(target, { recursive: true, mode: ((header.mode ?? 0o755) & 0o777) | 0o700 });
        entry.resume();
        break;
      case "file":
      case "contiguous-file": {
        const out = createWriteStream(target, { mode: (header.mode ?? 0o644) & 0o777 });
        const counted = Readable.from(tarBytes(entry)).on("data", (chunk: Buffer) => {
          progress.bytes += chunk.length;
          onProgress?.(progress);
        });
        await pipeline(counted, out);
        break;
      }
      case "symlink": {
        const linkname = header.linkname ?? "";
        const resolved = path.resolve(path.dirname(target), linkname);
        if (resolved !== root && !resolved.startsWith(`${root}/`)) {
          throw new Error(
            `refusing symlink ${JSON.stringify(header.name)} -> ${JSON.stringify(linkname)}: points outside`,
          );
        }
        await symlink(linkname, target);
        entry.resume();
        break;
      }
      default:
        entry.resume();
        continue;
    }
    progress.entries++;
    onProgress?.(progress);
  }
  await feeding;
  return progress;
}
