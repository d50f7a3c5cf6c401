import { isUtf8 } from "node:buffer";
import { type ChildProcess, spawn } from "node:child_process";
import { performance } from "node:perf_hooks";
import type { Clock, Logger, Timer } from "@sbx/edge";
import {
  ApiError,
  type Encoding,
  type ExecError,
  type ExecInfo,
  type ExecOutcome,
  type ExitData,
  type OutputStream,
  type Signal,
} from "@sbx/protocol";
import { HardDeadline, OrphanDeadline } from "./deadline.js";
import { commandProblem, launchCommand } from "./exec-launcher.js";
import { findExecProcesses, isErrno, signalAll } from "./process-tree.js";
import { type Frame, type Replay, RingBuffer, type RingSnapshot } from "./ring-buffer.js";
import { Utf8Chunker } from "./utf8-chunker.js";

export type { OutputStream };

export interface ExecSpec {
  execId: string;
  tag: string | undefined;
  /** Program and arguments (a shell command arrives here as `bash -lc CMD`). */
  command: readonly [string, ...string[]];
  cwd: string;
  env: Record<string, string>;
  /** Absent: stdin is /dev/null. */
  stdin: { initial: Buffer | undefined; hold: boolean } | undefined;
  timeoutMs: number | undefined;
  orphanTimeoutMs: number;
  encoding: Encoding;
  /** Value of the marker variable in the exec's environment (unique per runnerd process and exec). */
  marker: string;
  /** The exec's RLIMIT_LOCKS mark, inherited by all its processes (exec-launcher.ts). */
  mark: number;
}

export interface ExecDeps {
  ringBytes: number;
  pipeDrainMs: number;
  /** Grace between SIGTERM and SIGKILL when a deadline ends the exec. */
  killGraceMs: number;
  clock: Clock;
  log: Logger;
}

/** Reads an exec's frames by cursor. Held by each client following the exec's events. */
export interface ExecConsumer {
  /** New frames are available (or the exec ended). */
  wake(): void;
  /**
   * Frames leaving the replay buffer, oldest first. A consumer keeps those it
   * has not read yet in its own bounded backlog, or gives up (disconnects).
   */
  evicted(frames: readonly Frame[]): void;
}

/** Receives the raw bytes of an exec as they are read (used by `?wait=true`). */
export interface OutputTap {
  onOutput(stream: OutputStream, chunk: Buffer): void;
}

type Termination = "cancelled" | "timeout" | "orphaned" | "interrupted";

/** A finished exec as it is persisted across a stop or restart (state/state-store.ts). */
export interface ExecSnapshot {
  execId: string;
  tag: string | undefined;
  encoding: Encoding;
  pid: number | undefined;
  startedAt: number;
  endedAt: number;
  exit: ExitData;
  ring: RingSnapshot;
}

/**
 * One process started through the API and everything it emits: sequence-
 * numbered events kept in a bounded ring, followed by any number of
 * consumers, ended by exactly one exit event whose outcome never contradicts
 * the exit status.
 */
export class Exec {
  readonly execId: string;
  readonly tag: string | undefined;
  readonly encoding: Encoding;
  readonly startedAt: number;
  readonly finished: Promise<ExitData>;

  private readonly ring: RingBuffer;
  private readonly orphan: OrphanDeadline;
  private readonly hard: HardDeadline | undefined;
  private readonly consumers = new Set<ExecConsumer>();
  private readonly taps = new Set<OutputTap>();
  private readonly chunkers: Record<OutputStream, Utf8Chunker> | undefined;
  private readonly startedPerf: number;
  private readonly resolveFinished: (exit: ExitData) => void;
  private child: ChildProcess | undefined;
  private pidValue: number | undefined;
  private mainExit: { code: number | null; signal: NodeJS.Signals | null; durationMs: number } | undefined;
  private openPipes = 2;
  private drainTimer: Timer | undefined;
  private exitData: ExitData | undefined;
  private endedAtValue: number | undefined;
  private termination: Termination | undefined;
  private spawnError: ExecError | undefined;
  private stdinOpenValue = false;
  /** Bytes taken for stdin so far, the initial ones included: where the next write starts. */
  private stdinReceived = 0;
  private escalation: Timer | undefined;

  constructor(
    private readonly spec: ExecSpec,
    private readonly deps: ExecDeps,
    restored?: { startedAt: number; ring: RingBuffer },
  ) {
    this.execId = spec.execId;
    this.tag = spec.tag;
    this.encoding = spec.encoding;
    this.ring = restored?.ring ?? new RingBuffer(deps.ringBytes);
    this.chunkers = spec.encoding === "utf8" ? { stdout: new Utf8Chunker(), stderr: new Utf8Chunker() } : undefined;
    const finished = Promise.withResolvers<ExitData>();
    this.finished = finished.promise;
    this.resolveFinished = finished.resolve;
    this.startedAt = restored?.startedAt ?? deps.clock.now();
    this.startedPerf = performance.now();
    this.orphan = new OrphanDeadline(spec.orphanTimeoutMs, () => this.expire("orphaned"), deps.clock);
    this.hard =
      spec.timeoutMs === undefined
        ? undefined
        : new HardDeadline(spec.timeoutMs, () => this.expire("timeout"), deps.clock);
  }

  get pid(): number | undefined {
    return this.pidValue;
  }

  get running(): boolean {
    return this.exitData === undefined;
  }

  get exit(): ExitData | undefined {
    return this.exitData;
  }

  get endedAt(): number | undefined {
    return this.endedAtValue;
  }

  get lastSeq(): number {
    return this.ring.lastSeq;
  }

  /** Starts the process. Failures to start end the exec with outcome `failed`, never throw. */
  start(): void {
    const problem = commandProblem(this.spec.command[0], this.spec.cwd, this.spec.env.PATH);
    if (problem) {
      this.spawnError = problem;
      this.deps.log.info({ execId: this.execId, code: problem.code }, "exec failed to start");
      this.finish();
      return;
    }
    const [file, args] = launchCommand(this.spec.mark, this.spec.command);
    const stdinMode = this.spec.stdin ? "pipe" : "ignore";
    let child: ChildProcess;
    try {
      child = spawn(file, args, {
        cwd: this.spec.cwd,
        env: this.spec.env,
        // A new session and process group, so a cancel can signal the whole group.
        detached: true,
        stdio: [stdinMode, "pipe", "pipe"],
      });
    } catch (error) {
      this.failToStart(error);
      return;
    }
    this.child = child;
    child.on("error", (error) => {
      if (this.pidValue === undefined) this.failToStart(error);
      else this.deps.log.warn({ execId: this.execId, err: error }, "exec process error");
    });
    if (child.pid === undefined) return; // spawn failed; "error" follows on the next tick
    this.pidValue = child.pid;
    child.on("exit", (code, signal) => this.onMainExit(code, signal));
    this.wireOutput(child);
    this.wireStdin(child);
    const started = { execId: this.execId, pid: child.pid, startedAt: this.startedAt };
    this.appendFrame((seq) => ({ seq, type: "started", json: JSON.stringify(started) }));
  }

  /** Frames after `afterSeq` (a gap first if some were evicted), at most `maxFrames`. */
  read(afterSeq: number, maxFrames: number): Replay {
    return this.ring.replay(afterSeq, maxFrames);
  }

  /** Registers a cursor consumer; it keeps the orphan deadline disarmed until detached. */
  addConsumer(consumer: ExecConsumer): () => void {
    this.consumers.add(consumer);
    const release = this.orphan.attach();
    return () => {
      this.consumers.delete(consumer);
      release();
    };
  }

  /** Registers a raw output tap; it counts as an attached consumer until detached. */
  addTap(tap: OutputTap): () => void {
    this.taps.add(tap);
    const release = this.orphan.attach();
    return () => {
      this.taps.delete(tap);
      release();
    };
  }

  /**
   * Signals every process the exec started (group, marked, descendants) and,
   * unless the signal is SIGKILL, SIGKILLs whatever is left after `graceMs`.
   * Also reaches background processes left behind by an exec that has exited.
   */
  cancel(signal: Signal, graceMs: number): number {
    return this.terminate("cancelled", signal, graceMs);
  }

  /** Ends the exec because runnerd is stopping: its outcome is `interrupted` (unless it exits 0 first). */
  interrupt(graceMs: number): number {
    return this.terminate("interrupted", "SIGTERM", graceMs);
  }

  /** The finished exec, to persist; undefined while it runs. */
  snapshot(): ExecSnapshot | undefined {
    if (this.exitData === undefined || this.endedAtValue === undefined) return undefined;
    return {
      execId: this.execId,
      tag: this.tag,
      encoding: this.encoding,
      pid: this.pidValue,
      startedAt: this.startedAt,
      endedAt: this.endedAtValue,
      exit: this.exitData,
      ring: this.ring.snapshot(),
    };
  }

  /** A finished exec brought back from a snapshot: its record and replayable output, no process. */
  static restore(snapshot: ExecSnapshot, deps: ExecDeps): Exec {
    const exec = new Exec(
      {
        execId: snapshot.execId,
        tag: snapshot.tag,
        command: ["(restored)"],
        cwd: "/",
        env: {},
        stdin: undefined,
        timeoutMs: undefined,
        orphanTimeoutMs: 1000,
        encoding: snapshot.encoding,
        marker: "",
        mark: 0,
      },
      deps,
      { startedAt: snapshot.startedAt, ring: RingBuffer.restore(deps.ringBytes, snapshot.ring) },
    );
    exec.orphan.stop();
    exec.pidValue = snapshot.pid;
    exec.exitData = snapshot.exit;
    exec.endedAtValue = snapshot.endedAt;
    exec.openPipes = 0;
    exec.resolveFinished(snapshot.exit);
    return exec;
  }

  /**
   * Writes to a held-open stdin; resolves once the bytes are handed to the pipe. With `offset`
   * (where these bytes start in the stdin stream) a retried write skips what was received already
   * and a repeated close is a no-op; a write beyond what was received is refused.
   */
  async writeStdin(
    bytes: Buffer | undefined,
    eof: boolean,
    offset?: number,
  ): Promise<{ written: number; closed: boolean; received: number }> {
    let data = bytes;
    if (offset !== undefined) {
      if (offset > this.stdinReceived) {
        throw new ApiError(
          "CURSOR_AHEAD",
          `stdin of exec ${this.execId} has ${this.stdinReceived} bytes, not ${offset}`,
          {
            details: { received: this.stdinReceived },
          },
        );
      }
      const known = this.stdinReceived - offset;
      data = data?.subarray(Math.min(known, data.length));
      const noNewBytes = data === undefined || data.length === 0;
      // All of it received already (and the close too, if it asks for one): a repeat, answered as done.
      const repeat = noNewBytes && (eof ? !this.stdinOpenValue : known > 0);
      if (repeat) return { written: 0, closed: !this.stdinOpenValue, received: this.stdinReceived };
    }
    if (this.mainExit !== undefined || this.exitData !== undefined) {
      throw new ApiError("EXEC_NOT_RUNNING", `exec ${this.execId} has exited`);
    }
    const stdin = this.child?.stdin;
    if (!this.stdinOpenValue || !stdin) {
      throw new ApiError("STDIN_CLOSED", `stdin of exec ${this.execId} is closed`);
    }
    let written = 0;
    if (data !== undefined && data.length > 0) {
      // Counted when taken, so writes that follow each other are placed in order.
      this.stdinReceived += data.length;
      await new Promise<void>((resolve, reject) => {
        stdin.write(data, (error) => (error ? reject(error) : resolve()));
      }).catch((error: unknown) => {
        throw new ApiError("STDIN_CLOSED", `stdin of exec ${this.execId} is closed (the process closed it)`, {
          cause: error,
        });
      });
      written = data.length;
    }
    if (eof) this.closeStdin();
    return { written, closed: !this.stdinOpenValue, received: this.stdinReceived };
  }

  info(): ExecInfo {
    const exit = this.exitData;
    return {
      execId: this.execId,
      tag: this.tag ?? null,
      state: exit ? "exited" : "running",
      pid: this.pidValue ?? null,
      startedAt: this.startedAt,
      endedAt: this.endedAtValue ?? null,
      exitCode: exit?.exitCode ?? null,
      signal: exit?.signal ?? null,
      outcome: exit?.outcome ?? null,
      ...(exit?.error ? { error: exit.error } : {}),
      encoding: this.encoding,
      stdinOpen: this.stdinOpenValue,
      consumers: this.orphan.consumers,
      lastSeq: this.ring.lastSeq,
    };
  }

  /** Drops replayable output, keeping only the exit event (retention of old finished execs). */
  dropOutput(): void {
    this.notifyEvicted(this.ring.dropAllButFinal());
  }

  // ---- internals -------------------------------------------------------

  private wireOutput(child: ChildProcess): void {
    for (const name of ["stdout", "stderr"] as const) {
      const stream = child[name];
      if (!stream) {
        this.openPipes--;
        continue;
      }
      stream.on("data", (chunk: Buffer) => this.onOutput(name, chunk));
      stream.once("end", () => this.onPipeClosed());
      stream.on("error", (error) => {
        this.deps.log.warn({ execId: this.execId, stream: name, err: error }, "exec pipe error");
      });
    }
  }

  private wireStdin(child: ChildProcess): void {
    const stdin = child.stdin;
    const spec = this.spec.stdin;
    if (!stdin || !spec) return;
    // EPIPE when the process stops reading is normal; writeStdin reports it to the caller.
    stdin.on("error", (error) => {
      this.stdinOpenValue = false;
      if (!isErrno(error, "EPIPE")) this.deps.log.warn({ execId: this.execId, err: error }, "exec stdin error");
    });
    this.stdinOpenValue = true;
    if (spec.initial !== undefined && spec.initial.length > 0) {
      this.stdinReceived = spec.initial.length;
      stdin.write(spec.initial);
    }
    if (!spec.hold) this.closeStdin();
  }

  private closeStdin(): void {
    if (!this.stdinOpenValue) return;
    this.stdinOpenValue = false;
    this.child?.stdin?.end();
  }

  private onOutput(stream: OutputStream, chunk: Buffer): void {
    // Output of processes left behind after the exit event has nowhere to go; reading it keeps them unblocked.
    if (this.exitData !== undefined) return;
    for (const tap of this.taps) tap.onOutput(stream, chunk);
    if (this.chunkers) this.appendText(stream, this.chunkers[stream].push(chunk));
    else this.appendFrame((seq) => ({ seq, type: stream, base64: true, bytes: chunk }));
  }

  /** Text output: valid UTF-8 takes the fast encoder; anything else is decoded with U+FFFD replacements. */
  private appendText(stream: OutputStream, bytes: Buffer): void {
    if (bytes.length === 0) return;
    // Invalid UTF-8 is kept as its decoding, with U+FFFD replacements: what every reader gets.
    const text = isUtf8(bytes) ? bytes : Buffer.from(bytes.toString("utf8"));
    this.appendFrame((seq) => ({ seq, type: stream, base64: false, bytes: text }));
  }

  private onPipeClosed(): void {
    this.openPipes--;
    if (this.openPipes === 0 && this.mainExit !== undefined) this.finish();
  }

  private onMainExit(code: number | null, signal: NodeJS.Signals | null): void {
    this.mainExit = { code, signal, durationMs: performance.now() - this.startedPerf };
    // Deadlines bound the exec, which ends now; what it left in the background is not theirs to kill.
    this.orphan.stop();
    this.hard?.stop();
    this.closeStdin();
    if (this.openPipes === 0) {
      this.finish();
      return;
    }
    // Background processes may hold the pipes open forever: wait a bounded time for them.
    this.drainTimer = this.deps.clock.setTimeout(() => this.finish(), this.deps.pipeDrainMs);
  }

  private failToStart(error: unknown): void {
    this.spawnError = describeSpawnError(error, this.spec.command[0]);
    this.deps.log.info({ execId: this.execId, code: this.spawnError.code }, "exec failed to start");
    this.finish();
  }

  private finish(): void {
    if (this.exitData !== undefined) return;
    if (this.drainTimer !== undefined) this.deps.clock.clearTimeout(this.drainTimer);
    if (this.chunkers) {
      for (const stream of ["stdout", "stderr"] as const) this.appendText(stream, this.chunkers[stream].end());
    }
    this.orphan.stop();
    this.hard?.stop();
    this.closeStdin();
    const main = this.mainExit;
    const exit: ExitData = {
      exitCode: main?.code ?? null,
      signal: main?.signal ?? null,
      outcome: this.outcome(),
      durationMs: Math.round((main?.durationMs ?? performance.now() - this.startedPerf) * 1000) / 1000,
      truncated: this.ring.evictedThrough > 0,
      ...(this.spawnError ? { error: this.spawnError } : {}),
    };
    this.exitData = exit;
    this.endedAtValue = this.deps.clock.now();
    const seq = this.ring.lastSeq + 1;
    this.ring.appendFinal({ seq, type: "exit", json: JSON.stringify(exit) });
    for (const consumer of this.consumers) consumer.wake();
    this.deps.log.info(
      { execId: this.execId, tag: this.tag, pid: this.pidValue, outcome: exit.outcome, exitCode: exit.exitCode },
      "exec exited",
    );
    this.resolveFinished(exit);
  }

  /** A process that exited 0 completed, whatever we asked of it; otherwise our reason, if any, wins. */
  private outcome(): ExecOutcome {
    if (this.spawnError || this.mainExit === undefined) return "failed";
    if (this.mainExit.code === 0) return "completed";
    return this.termination ?? "failed";
  }

  private expire(reason: Termination): void {
    this.deps.log.info({ execId: this.execId, reason }, "exec deadline passed");
    this.terminate(reason, "SIGTERM", this.deps.killGraceMs);
  }

  private terminate(reason: Termination, signal: Signal, graceMs: number): number {
    if (this.mainExit === undefined && this.termination === undefined) this.termination = reason;
    const delivered = this.signalTree(signal);
    if (signal !== "SIGKILL" && this.escalation === undefined) this.scheduleEscalation(graceMs);
    return delivered;
  }

  /** Signals the exec's process group and every process found to belong to it; returns how many were reached. */
  private signalTree(signal: Signal): number {
    const leaderPid = this.mainExit === undefined ? this.pidValue : undefined;
    const members = findExecProcesses({ leaderPid, marker: this.spec.marker, mark: this.spec.mark });
    if (leaderPid !== undefined) {
      // The group first: it also reaches children forked after the scan.
      try {
        process.kill(-leaderPid, signal);
      } catch (error) {
        if (!isErrno(error, "ESRCH")) throw error;
      }
    }
    signalAll(members, signal);
    return members.length;
  }

  /** Polls until nothing of the exec is left, then stops; at the end of the grace, SIGKILLs the rest. */
  private scheduleEscalation(graceMs: number): void {
    const deadline = this.deps.clock.now() + graceMs;
    const step = () => {
      const left = deadline - this.deps.clock.now();
      const leaderPid = this.mainExit === undefined ? this.pidValue : undefined;
      const alive = findExecProcesses({ leaderPid, marker: this.spec.marker, mark: this.spec.mark });
      if (alive.length === 0) {
        this.escalation = undefined;
        return;
      }
      if (left <= 0) {
        this.escalation = undefined;
        const killed = this.signalTree("SIGKILL");
        this.deps.log.info({ execId: this.execId, killed }, "grace over: SIGKILL sent");
        return;
      }
      this.escalation = this.deps.clock.setTimeout(step, Math.min(100, left));
    };
    this.escalation = this.deps.clock.setTimeout(step, Math.min(100, graceMs));
  }

  private appendFrame(make: (seq: number) => Frame): void {
    const seq = this.ring.lastSeq + 1;
    this.notifyEvicted(this.ring.append(make(seq)));
    for (const consumer of this.consumers) consumer.wake();
  }

  private notifyEvicted(frames: readonly Frame[]): void {
    if (frames.length === 0) return;
    for (const consumer of this.consumers) consumer.evicted(frames);
  }
}

function describeSpawnError(error: unknown, file: string): ExecError {
  if (isErrno(error, "ENOENT")) return { code: "COMMAND_NOT_FOUND", message: `command not found: ${file}` };
  if (isErrno(error, "EACCES")) return { code: "COMMAND_NOT_EXECUTABLE", message: `permission denied: ${file}` };
  if (isErrno(error, "E2BIG")) return { code: "ARGUMENTS_TOO_LONG", message: "argument list too long" };
  const message = error instanceof Error ? error.message : String(error);
  return { code: "SPAWN_FAILED", message };
}
