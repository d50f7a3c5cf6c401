import type { ExecEvent, ExitData, Signal } from "@sbx/protocol";
import pRetry from "p-retry";
import { ConflictError, ConnectionError, ExecNotFoundError, SandboxError, UpstreamError } from "./errors.js";
import { readExecEvents } from "./event-stream.js";
import { Handoff } from "./handoff.js";
import { OutputTail } from "./output-tail.js";

export interface ExecOptions {
  /** Stops following the exec locally (the exec keeps running: use cancel() to stop it). */
  signal?: AbortSignal | undefined;
  /** Reconnects in a row without progress before giving up (default 10). */
  maxReconnects?: number | undefined;
  /** Characters of each of stdout and stderr that wait() keeps (the newest; default 1 Mi). */
  maxOutputChars?: number | undefined;
  /** Told about every re-attach, e.g. for logging. */
  onReconnect?: ((info: { attempt: number; afterSeq: number; error: unknown }) => void) | undefined;
}

export interface ExecWaitResult {
  execId: string;
  exitCode: number | null;
  signal: string | null;
  outcome: ExitData["outcome"];
  durationMs: number;
  /** The newest output (utf8 text, or base64 in base64 mode). */
  stdout: string;
  stderr: string;
  /** True when output is missing from stdout/stderr: cut to maxOutputChars, or evicted on the server (see gaps). */
  truncated: boolean;
  /** Events the server had already evicted when we asked for them. */
  gaps: Array<{ fromSeq: number; toSeq: number }>;
  error?: { code: string; message: string } | undefined;
}

/** What a handle needs from its session: starting the exec, and re-attaching to it. */
export interface ExecChannel {
  start(): Promise<Response>;
  attach(afterSeq: number, signal: AbortSignal | undefined): Promise<Response>;
  cancel(signal: Signal, graceMs: number | undefined): Promise<void>;
  stdin(body: { text?: string; data?: string; eof?: boolean }): Promise<void>;
}

/**
 * A running (or finished) exec: iterate its events, or wait() for the
 * result. When the connection drops it re-attaches with Last-Event-ID, so
 * every event arrives exactly once and in order; a `gap` event appears only
 * when the server really evicted output. No timeout ends a stream the
 * server keeps alive; the caller's AbortSignal does.
 */
export class ExecHandle implements AsyncIterable<ExecEvent> {
  private lastSeq: number;
  private iterated = false;
  private readonly tails: { stdout: OutputTail; stderr: OutputTail };
  private readonly gaps: Array<{ fromSeq: number; toSeq: number }> = [];
  private readonly settled: Promise<ExitData>;
  private readonly settle: { resolve: (exit: ExitData) => void; reject: (error: unknown) => void };

  constructor(
    readonly execId: string,
    private readonly channel: ExecChannel,
    /** The response of the start request; undefined when it is unknown whether the exec started. */
    private initial: Response | undefined,
    /** When the start is in doubt: start it if the server does not know it. */
    private startIfMissing: boolean,
    afterSeq: number,
    private readonly options: ExecOptions = {},
  ) {
    this.lastSeq = afterSeq;
    const cap = options.maxOutputChars ?? 1024 * 1024;
    this.tails = { stdout: new OutputTail(cap), stderr: new OutputTail(cap) };
    const { promise, resolve, reject } = Promise.withResolvers<ExitData>();
    this.settled = promise;
    this.settle = { resolve, reject };
    // wait() may never be called; an unobserved failure is still reported by the iterator.
    this.settled.catch(() => undefined);
  }

  /** Sequence number of the newest event delivered. */
  get lastEventId(): number {
    return this.lastSeq;
  }

  /** The events, each exactly once, in order, ending with the exit event. Iterate once. */
  [Symbol.asyncIterator](): AsyncIterator<ExecEvent> {
    if (this.iterated) throw new Error(`exec ${this.execId}: its events can be iterated only once`);
    this.iterated = true;
    return this.pump();
  }

  /** Waits for the exit (consuming the events unless you iterate them yourself). */
  async wait(): Promise<ExecWaitResult> {
    if (!this.iterated) for await (const _ of this);
    const exit = await this.settled;
    return {
      execId: this.execId,
      exitCode: exit.exitCode,
      signal: exit.signal,
      outcome: exit.outcome,
      durationMs: exit.durationMs,
      stdout: this.tails.stdout.toString(),
      stderr: this.tails.stderr.toString(),
      truncated: exit.truncated || this.gaps.length > 0 || this.tails.stdout.dropped || this.tails.stderr.dropped,
      gaps: [...this.gaps],
      ...(exit.error ? { error: exit.error } : {}),
    };
  }

  /** Signals the exec's whole process tree; SIGKILL follows after graceMs for what is left. */
  cancel(signal: Signal = "SIGTERM", graceMs?: number): Promise<void> {
    return this.channel.cancel(signal, graceMs);
  }

  /** Writes to the exec's stdin (started with `stdin: {mode: "hold"}`). */
  writeStdin(data: string | Uint8Array): Promise<void> {
    return this.channel.stdin(
      typeof data === "string" ? { text: data } : { data: Buffer.from(data).toString("base64") },
    );
  }

  /** Closes the exec's stdin. */
  closeStdin(): Promise<void> {
    return this.channel.stdin({ eof: true });
  }

  private async *pump(): AsyncGenerator<ExecEvent> {
    try {
      for await (const event of this.events()) {
        if (event.type === "stdout" || event.type === "stderr") {
          this.tails[event.type].push("text" in event.data ? event.data.text : event.data.data);
        } else if (event.type === "gap") {
          this.gaps.push(event.data);
        }
        yield event;
        if (event.type === "exit") {
          this.settle.resolve(event.data);
          return;
        }
      }
    } catch (error) {
      this.settle.reject(error);
      throw error;
    }
  }

  /**
   * Events with seq > lastSeq, across as many connections as it takes. When to try again is
   * p-retry's: a stream that delivered events before it broke re-attaches at once and costs no
   * retry; attempts without progress back off (100 ms doubling to 5 s, randomized) until
   * `maxReconnects` of them in a row fail.
   */
  private async *events(): AsyncGenerator<ExecEvent> {
    const maxReconnects = this.options.maxReconnects ?? 10;
    // Ends the connection in use when the caller stops iterating (or stops following).
    const left = new AbortController();
    const signal = this.options.signal ? AbortSignal.any([this.options.signal, left.signal]) : left.signal;
    const handoff = new Handoff<ExecEvent>();
    let progressed = false;
    const following = pRetry(
      async () => {
        progressed = false;
        const response = await this.open(signal);
        const body = response.body;
        if (!body) throw new ConnectionError("empty event stream", "EMPTY_STREAM", response.status);
        // The caller stopped following: this connection ends now, not when its next event comes.
        for await (const event of readExecEvents(body, response.headers.get("content-type"), signal)) {
          // Replays start after our cursor; this guard keeps "exactly once" even if one did not.
          if (event.seq <= this.lastSeq) continue;
          this.lastSeq = event.seq;
          progressed = true;
          await handoff.put(event);
          if (event.type === "exit") return;
        }
        throw new ConnectionError("the event stream ended before the exit event", "STREAM_ENDED", 0);
      },
      {
        retries: maxReconnects,
        minTimeout: 100,
        maxTimeout: 5000,
        randomize: true,
        signal,
        shouldConsumeRetry: () => !progressed,
        shouldRetry: ({ error, retriesConsumed }) => {
          if (!retryable(error)) return false;
          this.options.onReconnect?.({ attempt: retriesConsumed + 1, afterSeq: this.lastSeq, error });
          return true;
        },
      },
    ).catch((error: unknown) => {
      if (signal.aborted || !retryable(error)) throw error;
      throw new ConnectionError(
        `lost exec ${this.execId} after ${maxReconnects} reconnects: ${describeError(error)}`,
        "RECONNECTS_EXHAUSTED",
        0,
        undefined,
        { cause: error },
      );
    });
    following.then(
      () => handoff.end(),
      (error: unknown) => handoff.fail(error),
    );
    try {
      for (;;) {
        const event = await handoff.take();
        if (event === undefined) return;
        yield event;
      }
    } finally {
      left.abort(new Error("stopped following"));
      handoff.end();
    }
  }

  private async open(signal: AbortSignal): Promise<Response> {
    const initial = this.initial;
    this.initial = undefined;
    if (initial) return initial;
    try {
      return await this.channel.attach(this.lastSeq, signal);
    } catch (error) {
      // The start request broke before its answer and the server never heard of the exec: start it now.
      if (error instanceof ExecNotFoundError && this.startIfMissing && this.lastSeq === 0) {
        this.startIfMissing = false;
        return this.channel.start();
      }
      throw error;
    }
  }
}

/** Worth another attempt: the connection, the proxy or the session is momentarily away. */
function retryable(error: unknown): boolean {
  if (error instanceof SandboxError) {
    if (error instanceof ConnectionError || error instanceof UpstreamError) return true;
    return error instanceof ConflictError && error.code === "SESSION_NOT_READY";
  }
  // fetch's body stream breaks with a TypeError ("terminated") when the connection drops.
  return error instanceof TypeError;
}

function describeError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
