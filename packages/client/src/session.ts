import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  ArchiveExtractResponseSchema,
  CancelResponseSchema,
  DeleteResponseSchema,
  EnvNamesResponseSchema,
  type EnvPatchRequest,
  EnvPatchResponseSchema,
  type ExecInfo,
  ExecInfoSchema,
  ExecListResponseSchema,
  type ExecRequest,
  type FetchRequest,
  FetchResponseSchema,
  type FileInfo,
  FileInfoSchema,
  FileListResponseSchema,
  FileWriteResponseSchema,
  MkdirResponseSchema,
  MoveResponseSchema,
  type PatchSessionRequest,
  type Session,
  SessionResponseSchema,
  type Signal,
  StdinWriteResponseSchema,
} from "@sbx/protocol";
import type { z } from "zod";
import { packDirectory, type TransferProgress, unpackDirectory } from "./directory-archive.js";
import { ConnectionError } from "./errors.js";
import { EVENT_STREAM_ACCEPT } from "./event-stream.js";
import { ExecHandle, type ExecOptions, type ExecWaitResult } from "./exec-handle.js";
import { bodyOf, queryString, type Transport } from "./transport.js";

/** Reads of a local file to upload: a sixteenth of the chunks (and per-chunk work) of Node's default. */
const TRANSFER_CHUNK_BYTES = 1024 * 1024;
/** Bytes a download may queue for the disk: what arrives during a write goes out in one writev. */
const WRITE_QUEUE_BYTES = 4 * 1024 * 1024;

/** Bytes to upload: all at once, or streamed (web or Node stream, or any async iterable of bytes). */
export type UploadSource = string | Uint8Array | ReadableStream<Uint8Array> | Readable | AsyncIterable<Uint8Array>;

/** One session: its execs, environment and files. Get one with `client.session(id)`. */
export class SessionHandle {
  private readonly base: string;

  constructor(
    private readonly transport: Transport,
    readonly id: string,
  ) {
    this.base = `/v1/sessions/${encodeURIComponent(id)}`;
  }

  // ---- the session ------------------------------------------------------

  async get(options: { signal?: AbortSignal } = {}): Promise<Session> {
    return (await this.transport.json("GET", this.base, SessionResponseSchema, options)).session;
  }

  /** Extends or shortens the lifetime: `{ttlMs}` from now, or `{expiresAt}`, and/or `{idleTimeoutMs}`. */
  async update(patch: PatchSessionRequest): Promise<Session> {
    return (await this.transport.json("PATCH", this.base, SessionResponseSchema, { body: { json: patch } })).session;
  }

  /**
   * Stops the session, keeping its workspace, env and exec records (execs still running end
   * `interrupted`); it costs no memory until resumed. Idempotent.
   */
  async stop(): Promise<Session> {
    return (await this.transport.json("POST", `${this.base}/stop`, SessionResponseSchema)).session;
  }

  /** Starts a stopped session again (any call to it would too, unless the spawner refuses that). */
  async resume(): Promise<Session> {
    return (await this.transport.json("POST", `${this.base}/resume`, SessionResponseSchema)).session;
  }

  /** Deletes the session, its processes and its workspace. */
  delete(): Promise<void> {
    return this.transport.empty("DELETE", this.base);
  }

  // ---- execs --------------------------------------------------------------

  /**
   * Starts an exec and returns its handle once the server has taken it.
   * Iterate the handle for events, or `await handle.wait()`.
   */
  async exec(request: ExecRequest, options: ExecOptions = {}): Promise<ExecHandle> {
    // Our own id, so the exec can be found again even if the answer to this request is lost.
    const execId = request.execId ?? randomBytes(8).toString("hex");
    const body = { ...request, execId };
    const channel = this.channel(execId, () =>
      this.transport.send("POST", `${this.base}/execs`, {
        body: { json: body },
        headers: { accept: EVENT_STREAM_ACCEPT },
        signal: options.signal,
      }),
    );
    try {
      return new ExecHandle(execId, channel, await channel.start(), false, 0, options);
    } catch (error) {
      if (!(error instanceof ConnectionError)) throw error;
      // Unknown whether it started: the handle attaches, and starts it only if the server never heard of it.
      return new ExecHandle(execId, channel, undefined, true, 0, options);
    }
  }

  /** Runs an exec to its end and returns its result (the newest output, bounded: see ExecOptions). */
  async run(request: ExecRequest, options: ExecOptions = {}): Promise<ExecWaitResult> {
    return (await this.exec(request, options)).wait();
  }

  /** Follows an existing exec from after event `after` (default: from the start). */
  attach(execId: string, options: ExecOptions & { after?: number } = {}): ExecHandle {
    const channel = this.channel(execId, () => {
      throw new Error("attach() never starts an exec");
    });
    return new ExecHandle(execId, channel, undefined, false, options.after ?? 0, options);
  }

  async listExecs(filter: { tag?: string; state?: "running" | "exited" } = {}): Promise<ExecInfo[]> {
    const response = await this.transport.json(
      "GET",
      `${this.base}/execs${queryString(filter)}`,
      ExecListResponseSchema,
    );
    return response.execs;
  }

  getExec(execId: string): Promise<ExecInfo> {
    return this.transport.json("GET", `${this.base}/execs/${encodeURIComponent(execId)}`, ExecInfoSchema);
  }

  /** Forgets a finished exec. */
  forgetExec(execId: string): Promise<void> {
    return this.transport.empty("DELETE", `${this.base}/execs/${encodeURIComponent(execId)}`);
  }

  cancelExec(
    execId: string,
    signal: Signal = "SIGTERM",
    graceMs?: number,
  ): Promise<z.infer<typeof CancelResponseSchema>> {
    return this.transport.json(
      "POST",
      `${this.base}/execs/${encodeURIComponent(execId)}/cancel`,
      CancelResponseSchema,
      {
        body: { json: { signal, ...(graceMs === undefined ? {} : { graceMs }) } },
      },
    );
  }

  // ---- environment --------------------------------------------------------

  /** Names of the session environment (values are never returned). */
  async envNames(): Promise<string[]> {
    return (await this.transport.json("GET", `${this.base}/env`, EnvNamesResponseSchema)).names;
  }

  /** Sets and unsets session environment variables for execs started afterwards. */
  patchEnv(patch: EnvPatchRequest): Promise<z.infer<typeof EnvPatchResponseSchema>> {
    return this.transport.json("PATCH", `${this.base}/env`, EnvPatchResponseSchema, { body: { json: patch } });
  }

  // ---- files --------------------------------------------------------------

  /** A file's bytes as a web stream, as they arrive. */
  async readFile(path: string, options: { signal?: AbortSignal } = {}): Promise<ReadableStream<Uint8Array>> {
    const response = await this.transport.send("GET", `${this.base}/files/content${queryString({ path })}`, options);
    if (!response.body) throw new ConnectionError("empty file body", "EMPTY_BODY", response.status);
    return response.body;
  }

  /** A (small) file's bytes, whole. */
  async readFileBytes(path: string): Promise<Uint8Array> {
    const response = await this.transport.send("GET", `${this.base}/files/content${queryString({ path })}`);
    return new Uint8Array(await response.arrayBuffer());
  }

  /** Writes a file atomically (parents are created). Streams are sent as they are read. */
  writeFile(
    path: string,
    data: UploadSource,
    options: { mode?: string; signal?: AbortSignal } = {},
  ): Promise<z.infer<typeof FileWriteResponseSchema>> {
    const target = `${this.base}/files/content${queryString({ path, mode: options.mode })}`;
    const body =
      typeof data === "string" || data instanceof Uint8Array ? { bytes: data } : { stream: toWebStream(data) };
    return this.transport.json("PUT", target, FileWriteResponseSchema, { body, signal: options.signal });
  }

  /**
   * Uploads a local file (Node): streamed from disk in 1 MiB reads through Node's HTTP client and
   * written atomically in the session (parents are created). `mode` defaults to the local file's.
   */
  async uploadFile(
    localPath: string,
    remotePath: string,
    options: { mode?: string; onProgress?: (bytes: number) => void; signal?: AbortSignal } = {},
  ): Promise<z.infer<typeof FileWriteResponseSchema>> {
    const mode = options.mode ?? ((await stat(localPath)).mode & 0o777).toString(8).padStart(4, "0");
    let sent = 0;
    const source = createReadStream(localPath, { highWaterMark: TRANSFER_CHUNK_BYTES }).on("data", (chunk) => {
      sent += chunk.length;
      options.onProgress?.(sent);
    });
    const target = `${this.base}/files/content${queryString({ path: remotePath, mode })}`;
    const response = await this.transport.sendNode("PUT", target, { body: source, signal: options.signal });
    return FileWriteResponseSchema.parse(JSON.parse((await bodyOf(response)).toString("utf8")));
  }

  /**
   * Downloads a session file to a local path (Node), through Node's HTTP client and a deep write
   * queue; the file appears whole under its name or not at all (a temporary name until complete).
   * Returns the bytes written.
   */
  async downloadFile(
    remotePath: string,
    localPath: string,
    options: { mode?: number; onProgress?: (bytes: number) => void; signal?: AbortSignal } = {},
  ): Promise<number> {
    const response = await this.transport.sendNode(
      "GET",
      `${this.base}/files/content${queryString({ path: remotePath })}`,
      { signal: options.signal },
    );
    const temp = path.join(
      path.dirname(localPath),
      `.${path.basename(localPath)}.${randomBytes(4).toString("hex")}.part`,
    );
    let received = 0;
    try {
      await pipeline(
        response,
        async function* (chunks: AsyncIterable<Buffer>) {
          for await (const chunk of chunks) {
            received += chunk.length;
            options.onProgress?.(received);
            yield chunk;
          }
        },
        createWriteStream(temp, { mode: options.mode ?? 0o644, highWaterMark: WRITE_QUEUE_BYTES }),
      );
      await rename(temp, localPath);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
    return received;
  }

  stat(path: string): Promise<FileInfo> {
    return this.transport.json("GET", `${this.base}/files/stat${queryString({ path })}`, FileInfoSchema);
  }

  list(path = ".", depth = 1): Promise<z.infer<typeof FileListResponseSchema>> {
    return this.transport.json("GET", `${this.base}/files/list${queryString({ path, depth })}`, FileListResponseSchema);
  }

  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    await this.transport.json(
      "DELETE",
      `${this.base}/files${queryString({ path, recursive: options.recursive })}`,
      DeleteResponseSchema,
    );
  }

  mkdir(path: string): Promise<z.infer<typeof MkdirResponseSchema>> {
    return this.transport.json("POST", `${this.base}/files/mkdir`, MkdirResponseSchema, { body: { json: { path } } });
  }

  move(from: string, to: string, options: { overwrite?: boolean } = {}): Promise<z.infer<typeof MoveResponseSchema>> {
    return this.transport.json("POST", `${this.base}/files/move`, MoveResponseSchema, {
      body: { json: { from, to, ...(options.overwrite === undefined ? {} : { overwrite: options.overwrite }) } },
    });
  }

  /** Downloads a URL into the workspace (capped, optionally sha256-checked, atomic). */
  fetchUrl(request: FetchRequest): Promise<z.infer<typeof FetchResponseSchema>> {
    return this.transport.json("POST", `${this.base}/files/fetch`, FetchResponseSchema, { body: { json: request } });
  }

  /** A directory (or file) in the workspace as a tar stream. */
  async downloadArchive(path: string, options: { signal?: AbortSignal } = {}): Promise<ReadableStream<Uint8Array>> {
    const response = await this.transport.send("GET", `${this.base}/files/archive${queryString({ path })}`, options);
    if (!response.body) throw new ConnectionError("empty archive body", "EMPTY_BODY", response.status);
    return response.body;
  }

  /** Extracts a tar (or gzipped tar) stream into a workspace directory, all or nothing. */
  uploadArchive(path: string, archive: UploadSource): Promise<z.infer<typeof ArchiveExtractResponseSchema>> {
    const body =
      typeof archive === "string" || archive instanceof Uint8Array
        ? { bytes: archive }
        : { stream: toWebStream(archive) };
    return this.transport.json(
      "PUT",
      `${this.base}/files/archive${queryString({ path })}`,
      ArchiveExtractResponseSchema,
      { body },
    );
  }

  /** Uploads a local directory (or file) into `remotePath`, streamed as tar from disk. */
  uploadDirectory(
    localPath: string,
    remotePath: string,
    options: { onProgress?: (progress: TransferProgress) => void } = {},
  ): Promise<z.infer<typeof ArchiveExtractResponseSchema>> {
    return this.uploadArchive(remotePath, packDirectory(localPath, options.onProgress));
  }

  /** Downloads a workspace directory into a local one, extracting as the tar arrives. */
  async downloadDirectory(
    remotePath: string,
    localPath: string,
    options: { onProgress?: (progress: TransferProgress) => void } = {},
  ): Promise<TransferProgress> {
    return unpackDirectory(await this.downloadArchive(remotePath), localPath, options.onProgress);
  }

  // ---- internals ------------------------------------------------------------

  private channel(execId: string, start: () => Promise<Response>) {
    const path = `${this.base}/execs/${encodeURIComponent(execId)}`;
    return {
      start,
      attach: (afterSeq: number, signal: AbortSignal | undefined) =>
        this.transport.send("GET", `${path}/events`, {
          headers: { "last-event-id": String(afterSeq), accept: EVENT_STREAM_ACCEPT },
          signal,
        }),
      cancel: async (signal: Signal, graceMs: number | undefined) => {
        await this.cancelExec(execId, signal, graceMs);
      },
      stdin: async (body: { text?: string; data?: string; eof?: boolean }) => {
        await this.transport.json("POST", `${path}/stdin`, StdinWriteResponseSchema, { body: { json: body } });
      },
    };
  }
}

function toWebStream(source: Exclude<UploadSource, string | Uint8Array>): ReadableStream<Uint8Array> {
  if (source instanceof ReadableStream) return source;
  return ReadableStream.from(bytes(source));
}

async function* bytes(source: AsyncIterable<unknown>): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    if (chunk instanceof Uint8Array) yield chunk;
    else if (typeof chunk === "string") yield Buffer.from(chunk);
    else throw new TypeError("upload streams must yield bytes or strings");
  }
}
