import { randomBytes } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import path from "node:path";
import type { Clock, Logger, Timer } from "@sbx/edge";
import { ApiError, type ExecInfo, isReservedEnvName, type ParsedExecRequest, type Signal } from "@sbx/protocol";
import type { EnvStore } from "../env/env-store.js";
import { Exec, type ExecSnapshot } from "./exec.js";
import { LOCKS_MARK_BASE } from "./exec-launcher.js";
import { isErrno } from "./process-tree.js";

export interface ExecManagerOptions {
  root: string;
  ringBytes: number;
  maxExecs: number;
  orphanTimeoutMs: number;
  pipeDrainMs: number;
  killGraceMs: number;
  retainMs: number;
  retainOutputExecs: number;
  retainExecs: number;
}

export interface ExecManagerDeps {
  envStore: EnvStore;
  baseEnv: Readonly<Record<string, string>>;
  incarnation: string;
  clock: Clock;
  log: Logger;
}

/** `bash -lc` where bash exists, else `sh -c`. */
export function detectShell(): readonly [string, string] {
  for (const bash of ["/bin/bash", "/usr/bin/bash"]) if (existsSync(bash)) return [bash, "-lc"];
  return ["/bin/sh", "-c"];
}

/**
 * All execs of this runnerd: starts them within the live limit, finds them by
 * id, and forgets finished ones by age and count (keeping only the exit record
 * of older ones so a late attach still learns the outcome).
 */
export class ExecManager {
  private readonly execs = new Map<string, Exec>();
  /** Finished execs, oldest first. */
  private finishedOrder: Exec[] = [];
  private readonly shell = detectShell();
  private sweepTimer: Timer | undefined;
  private shuttingDown = false;
  /** Execs started by this runnerd: each gets the next RLIMIT_LOCKS mark. */
  private marks = 0;

  constructor(
    private readonly options: ExecManagerOptions,
    private readonly deps: ExecManagerDeps,
  ) {
    this.scheduleSweep();
  }

  get liveCount(): number {
    let live = 0;
    for (const exec of this.execs.values()) if (exec.running) live++;
    return live;
  }

  async start(request: ParsedExecRequest): Promise<Exec> {
    if (this.shuttingDown) throw new ApiError("SHUTTING_DOWN", "runnerd is shutting down");
    const execId = request.execId ?? randomBytes(8).toString("hex");
    const existing = this.execs.get(execId);
    if (existing?.running) throw new ApiError("EXEC_EXISTS", `exec ${execId} is still running`);
    if (this.liveCount >= this.options.maxExecs) {
      throw new ApiError("TOO_MANY_EXECS", `${this.options.maxExecs} execs are already running`, {
        headers: { "Retry-After": "1" },
      });
    }
    const overlay = request.env ?? {};
    const reserved = Object.keys(overlay).filter(isReservedEnvName);
    if (reserved.length > 0) {
      throw new ApiError("VALIDATION_FAILED", `invalid exec request: env.${reserved[0]}: name is reserved`, {
        details: { issues: reserved.map((name) => ({ path: `env.${name}`, message: "name is reserved" })) },
      });
    }
    const cwd = this.resolveCwd(request.cwd);
    if (existing) this.forget(existing.execId);
    const marker = `${this.deps.incarnation}.${execId}`;
    const mark = LOCKS_MARK_BASE + ++this.marks;
    const command: [string, ...string[]] =
      request.shell !== undefined ? [this.shell[0], this.shell[1], request.shell] : toCommand(request.argv);
    const stdin = request.stdin
      ? {
          initial: stdinBytes(request.stdin.text, request.stdin.data),
          hold: request.stdin.mode === "hold",
        }
      : undefined;
    const exec = new Exec(
      {
        execId,
        tag: request.tag,
        command,
        cwd,
        env: this.deps.envStore.execEnvironment(this.deps.baseEnv, overlay, { cwd, marker }),
        stdin,
        timeoutMs: request.timeoutMs,
        orphanTimeoutMs: request.orphanTimeoutMs ?? this.options.orphanTimeoutMs,
        encoding: request.encoding,
        marker,
        mark,
      },
      {
        ringBytes: this.options.ringBytes,
        pipeDrainMs: this.options.pipeDrainMs,
        killGraceMs: this.options.killGraceMs,
        clock: this.deps.clock,
        log: this.deps.log,
      },
    );
    this.execs.set(execId, exec);
    void exec.finished.then(() => this.onFinished(exec));
    exec.start();
    this.deps.log.info({ execId, tag: request.tag, pid: exec.pid }, "exec started");
    return exec;
  }

  get(execId: string): Exec {
    const exec = this.execs.get(execId);
    if (!exec) throw new ApiError("EXEC_NOT_FOUND", `no exec ${execId} (never started, or forgotten)`);
    return exec;
  }

  list(filter: { tag?: string | undefined; state?: "running" | "exited" | undefined }): ExecInfo[] {
    const out: ExecInfo[] = [];
    for (const exec of this.execs.values()) {
      if (filter.tag !== undefined && exec.tag !== filter.tag) continue;
      const info = exec.info();
      if (filter.state !== undefined && info.state !== filter.state) continue;
      out.push(info);
    }
    return out.sort((a, b) => a.startedAt - b.startedAt);
  }

  /** Forgets a finished exec. */
  remove(execId: string): void {
    const exec = this.get(execId);
    if (exec.running) throw new ApiError("EXEC_RUNNING", `exec ${execId} is still running; cancel it first`);
    this.forget(execId);
  }

  cancel(execId: string, signal: Signal, graceMs: number): { exec: Exec; signalled: number } {
    const exec = this.get(execId);
    return { exec, signalled: exec.cancel(signal, graceMs) };
  }

  /**
   * Stops every exec's processes (SIGTERM, grace, SIGKILL) and waits, bounded, for them to end;
   * those still running end `interrupted`.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.shuttingDown = true;
    if (this.sweepTimer !== undefined) this.deps.clock.clearTimeout(this.sweepTimer);
    const running: Promise<unknown>[] = [];
    for (const exec of this.execs.values()) {
      exec.interrupt(graceMs);
      if (exec.running) running.push(exec.finished);
    }
    const bound = new Promise<void>((resolve) => this.deps.clock.setTimeout(resolve, graceMs + 1000));
    await Promise.race([Promise.all(running), bound]);
  }

  /** Finished execs, oldest first, with their replayable output: what a stop persists. */
  snapshots(): ExecSnapshot[] {
    return this.finishedOrder.flatMap((exec) => {
      const snapshot = exec.snapshot();
      return snapshot ? [snapshot] : [];
    });
  }

  /** Brings back finished execs persisted by an earlier runnerd of this session, oldest first. */
  restore(snapshots: readonly ExecSnapshot[]): void {
    for (const snapshot of snapshots) {
      if (this.execs.has(snapshot.execId)) continue;
      const exec = Exec.restore(snapshot, {
        ringBytes: this.options.ringBytes,
        pipeDrainMs: this.options.pipeDrainMs,
        killGraceMs: this.options.killGraceMs,
        clock: this.deps.clock,
        log: this.deps.log,
      });
      this.execs.set(exec.execId, exec);
      this.finishedOrder.push(exec);
    }
    this.enforceRetention();
  }

  /** Synchronous on purpose: one stat is cheaper than a thread-pool round trip on the exec hot path. */
  private resolveCwd(cwd: string | undefined): string {
    const dir = cwd === undefined ? this.options.root : path.resolve(this.options.root, cwd);
    try {
      const info = statSync(dir);
      if (!info.isDirectory()) throw new ApiError("INVALID_CWD", `cwd ${dir} is not a directory`);
    } catch (error) {
      if (error instanceof ApiError) throw error;
      if (isErrno(error, "ENOENT")) throw new ApiError("INVALID_CWD", `cwd ${dir} does not exist`);
      throw new ApiError("INVALID_CWD", `cwd ${dir} is not usable`, { cause: error });
    }
    return dir;
  }

  private onFinished(exec: Exec): void {
    if (this.execs.get(exec.execId) !== exec) return;
    this.finishedOrder.push(exec);
    this.enforceRetention();
  }

  private forget(execId: string): void {
    const exec = this.execs.get(execId);
    if (!exec) return;
    this.execs.delete(execId);
    this.finishedOrder = this.finishedOrder.filter((e) => e !== exec);
  }

  private enforceRetention(): void {
    const now = this.deps.clock.now();
    const keep: Exec[] = [];
    for (const exec of this.finishedOrder) {
      if ((exec.endedAt ?? now) + this.options.retainMs <= now) this.execs.delete(exec.execId);
      else keep.push(exec);
    }
    while (keep.length > this.options.retainExecs) {
      const oldest = keep.shift();
      if (oldest) this.execs.delete(oldest.execId);
    }
    // Only the newest few keep their replay buffers; the rest keep their exit record.
    for (let i = 0; i < keep.length - this.options.retainOutputExecs; i++) keep[i]?.dropOutput();
    this.finishedOrder = keep;
  }

  private scheduleSweep(): void {
    const every = Math.min(60_000, Math.max(1000, Math.floor(this.options.retainMs / 4)));
    this.sweepTimer = this.deps.clock.setTimeout(() => {
      this.enforceRetention();
      this.scheduleSweep();
    }, every);
    this.sweepTimer.unref?.();
  }
}

function toCommand(argv: string[] | undefined): [string, ...string[]] {
  const [file, ...args] = argv ?? [];
  // The request schema guarantees exactly one of argv (non-empty) and shell.
  if (file === undefined) throw new ApiError("VALIDATION_FAILED", "argv must not be empty");
  return [file, ...args];
}

function stdinBytes(text: string | undefined, data: string | undefined): Buffer | undefined {
  if (text !== undefined) return Buffer.from(text, "utf8");
  if (data !== undefined) return Buffer.from(data, "base64");
  return undefined;
}
