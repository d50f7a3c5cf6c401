import { createReadStream } from "node:fs";
import { lstat, readdir, readlink } from "node:fs/promises";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import * as tar from "tar-stream";

/**
 * The tar stream every sbx archive transfer speaks: a directory (entries
 * relative to it, sorted, directories first) or a single file, read from
 * disk as it is sent. Symlinks are stored as links and never followed;
 * sockets and devices are skipped. runnerd packs workspaces with it, the SDK
 * packs local directories with it.
 */
export function packTree(
  source: string,
  options: {
    onBytes?: (bytes: number) => void;
    onEntry?: () => void;
    onError?: (error: unknown) => void;
    /** Top-level names of a directory to leave out. */
    exclude?: ReadonlySet<string>;
  } = {},
): ReadableStream<Uint8Array> {
  const packer = tar.pack();
  const add = async (abs: string, name: string): Promise<void> => {
    const info = await lstat(abs);
    const header = { name, mode: info.mode & 0o7777, mtime: info.mtime };
    if (info.isDirectory()) {
      if (name !== "") packer.entry({ ...header, name: `${name}/`, type: "directory" });
      for (const child of (await readdir(abs)).sort()) {
        if (name === "" && options.exclude?.has(child)) continue;
        await add(path.join(abs, child), path.posix.join(name, child));
      }
    } else if (info.isSymbolicLink()) {
      packer.entry({ ...header, type: "symlink", linkname: await readlink(abs) });
    } else if (info.isFile()) {
      await new Promise<void>((resolve, reject) => {
        const entry = packer.entry({ ...header, type: "file", size: info.size }, (error) =>
          error ? reject(error) : resolve(),
        );
        const file = createReadStream(abs);
        if (options.onBytes) file.on("data", (chunk) => options.onBytes?.(chunk.length));
        pipeline(file, entry).catch(reject);
      });
    } else {
      return;
    }
    options.onEntry?.();
  };
  void (async () => {
    const top = await lstat(source);
    await (top.isDirectory() ? add(source, "") : add(source, path.basename(source)));
  })().then(
    () => packer.finalize(),
    (error: unknown) => {
      options.onError?.(error);
      packer.destroy(error instanceof Error ? error : new Error(String(error)));
    },
  );
  return ReadableStream.from(tarBytes(packer));
}

/** tar-stream's streams yield untyped chunks; they are always bytes, which this checks. */
export async function* tarBytes(source: AsyncIterable<unknown>): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    if (!(chunk instanceof Uint8Array)) throw new TypeError("tar stream produced a non-byte chunk");
    yield chunk;
  }
}
