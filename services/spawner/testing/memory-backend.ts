import { randomUUID } from "node:crypto";
import { type Clock, sleep, systemClock } from "@sbx/edge";
import { ANNOTATIONS, type FailureReason, LABELS } from "@sbx/protocol";
import type {
  BackendCapabilities,
  BackendSession,
  BackendSessionSpec,
  BackendState,
  HeldLock,
  OwnedObject,
  PoolMember,
  SessionBackend,
  SessionListener,
  SessionMeta,
} from "../src/backends/backend.js";
import {
  BackendConflictError,
  BackendNotFoundError,
  BackendUnavailableError,
  ImageUnavailableError,
  StartFailedError,
  StartTimeoutError,
} from "../src/backends/backend-errors.js";
import { amendable } from "../src/backends/core/session-meta.js";
import { FakeRunnerd, type RouteAnswer } from "./fake-runnerd.js";

export interface MemoryBackendOptions {
  /** The platform it stands in for, as sessions report it. */
  kind?: SessionBackend["kind"];
  /** Images that run and whose runnerd answers. */
  images?: string[];
  /** Images whose container exits at once (exit code 1). */
  quittingImages?: string[];
  /** Images that run but never get an address: creates end at their deadline. */
  silentImages?: string[];
  /** How long a start takes before runnerd answers. */
  startDelayMs?: number;
  /** Where its sessions reach the host (as a Docker network's gateway address). */
  hostAddress?: string;
  /** Its time (lock expiries, stop times, start delays) and its fake runnerds' (default: the system's). */
  clock?: Clock;
  /** What the platform it stands in for can do (default: everything). */
  capabilities?: Partial<BackendCapabilities>;
  /** Routes every session's runnerd answers by hand (see FakeRunnerd.answer). */
  runnerdAnswers?: Readonly<Record<string, RouteAnswer>>;
}

interface Entry {
  session: BackendSession;
  runnerd: FakeRunnerd | undefined;
}

/**
 * A backend in memory, for fast tests of the spawner's own logic (no Docker,
 * no cluster): sessions are records, each with a fake runnerd listening on
 * 127.0.0.1 so the proxy and control calls run over real HTTP. Test controls
 * (`fail`, `removeOutOfBand`, `setReachable`) play what a platform does to
 * a session behind the spawner's back.
 */
export class MemoryBackend implements SessionBackend {
  readonly kind: SessionBackend["kind"];
  readonly capabilities: BackendCapabilities;
  private readonly clock: Clock;
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<SessionListener>();
  private reachable = true;
  private readonly locks = new Map<string, { expires: number; token: string }>();
  /** Pool members claimed so far (for tests). */
  claims = 0;
  private readonly images: Set<string>;

  constructor(private readonly options: MemoryBackendOptions = {}) {
    this.kind = options.kind ?? "docker";
    this.clock = options.clock ?? systemClock;
    this.capabilities = { stopsKeepEveryWorkspace: true, renewableLocks: true, ...options.capabilities };
    this.images = new Set(options.images ?? ["sbx-runtime:latest"]);
  }

  async init(): Promise<void> {
    this.check();
  }

  async ping(): Promise<void> {
    this.check();
  }

  hostAddress(): string | undefined {
    return this.options.hostAddress;
  }

  async create(spec: BackendSessionSpec, signal: AbortSignal): Promise<BackendSession> {
    this.check();
    if (this.entries.has(spec.id)) throw new BackendConflictError(`session ${spec.id} exists`);
    if (signal.aborted) throw new StartTimeoutError("the create's deadline passed before the session was made");
    const quitting = this.options.quittingImages?.includes(spec.image) ?? false;
    const silent = this.options.silentImages?.includes(spec.image) ?? false;
    if (!this.images.has(spec.image) && !quitting && !silent) {
      throw new ImageUnavailableError(spec.image, `image ${spec.image} is not present`);
    }
    const entry: Entry = {
      session: { id: spec.id, meta: spec.meta, state: { phase: "starting" }, endpoint: undefined },
      runnerd: undefined,
    };
    this.entries.set(spec.id, entry);
    this.emit(spec.id);
    try {
      if (this.options.startDelayMs) await sleep(this.clock, this.options.startDelayMs, signal);
      if (quitting) {
        throw new StartFailedError({
          code: "exited",
          message: "the session container exited with code 1 before runnerd answered",
          exitCode: 1,
          at: this.clock.now(),
        });
      }
      if (silent) {
        await new Promise((_, reject) => {
          signal.addEventListener("abort", () => reject(new StartTimeoutError("no address in time")), { once: true });
        });
      }
      const runnerd = new FakeRunnerd(
        spec.runnerdEnv.RUNNERD_TOKEN_SHA256 ?? "",
        this.clock,
        this.options.runnerdAnswers,
      );
      const port = await runnerd.listen();
      if (this.entries.get(spec.id) !== entry) {
        await runnerd.stop();
        throw new BackendConflictError(`session ${spec.id} was removed while it started`);
      }
      // As a platform would: a deadline that passed while it started fails the create.
      if (signal.aborted) {
        await runnerd.stop();
        throw new StartTimeoutError("no address in time");
      }
      entry.runnerd = runnerd;
      entry.session = { ...entry.session, state: { phase: "running" }, endpoint: { host: "127.0.0.1", port } };
      this.emit(spec.id);
      return entry.session;
    } catch (error) {
      if (this.entries.get(spec.id) === entry) this.entries.delete(spec.id);
      this.emit(spec.id);
      if (signal.aborted && !(error instanceof StartFailedError)) throw new StartTimeoutError("no address in time");
      throw error;
    }
  }

  async find(id: string): Promise<BackendSession | undefined> {
    this.check();
    const session = this.entries.get(id)?.session;
    return session && !isMember(session) ? session : undefined;
  }

  async list(): Promise<BackendSession[]> {
    this.check();
    return [...this.entries.values()].map((e) => e.session).filter((s) => !isMember(s));
  }

  async listPool(): Promise<PoolMember[]> {
    this.check();
    return [...this.entries.values()].flatMap(({ session }) => {
      const profile = session.meta.labels[LABELS.pool];
      if (profile === undefined) return [];
      return [
        {
          memberId: session.id,
          profile,
          image: session.meta.annotations[ANNOTATIONS.image] ?? "",
          imageId: undefined,
          state: session.state,
          endpoint: session.endpoint,
          createdAt: Number(session.meta.annotations[ANNOTATIONS.createdAt] ?? 0),
        },
      ];
    });
  }

  async claim(member: PoolMember, meta: SessionMeta): Promise<BackendSession> {
    this.check();
    const { memberId } = member;
    const id = meta.labels[LABELS.sessionId] ?? "";
    const entry = this.entries.get(memberId);
    if (!entry || !isMember(entry.session) || entry.session.state.phase !== "running") {
      throw new BackendConflictError(`pool member ${memberId} was claimed or is not ready`);
    }
    if (this.entries.has(id)) throw new BackendConflictError(`a session ${id} exists`);
    this.entries.delete(memberId);
    entry.session = {
      ...entry.session,
      id,
      meta: { labels: meta.labels, annotations: { ...meta.annotations, [ANNOTATIONS.poolMember]: memberId } },
    };
    this.entries.set(id, entry);
    this.claims++;
    this.emit(id);
    return entry.session;
  }

  async tryLock(name: string, options: { ttlMs: number }): Promise<HeldLock | undefined> {
    this.check();
    const held = this.locks.get(name);
    if (held !== undefined && held.expires > this.clock.now()) return undefined;
    const token = randomUUID();
    this.locks.set(name, { expires: this.clock.now() + options.ttlMs, token });
    return { name, token };
  }

  async unlock(lock: HeldLock): Promise<void> {
    if (this.locks.get(lock.name)?.token === lock.token) this.locks.delete(lock.name);
  }

  async renewLock(lock: HeldLock, ttlMs: number): Promise<boolean> {
    this.check();
    const held = this.locks.get(lock.name);
    if (held?.token !== lock.token || held.expires <= this.clock.now()) return false;
    held.expires = this.clock.now() + ttlMs;
    return true;
  }

  async currentImageId(): Promise<string | undefined> {
    return undefined;
  }

  async stop(id: string): Promise<void> {
    this.check();
    const entry = this.entries.get(id);
    if (!entry) throw new BackendNotFoundError(`no session ${id}`);
    if (entry.session.state.phase === "stopped") return;
    entry.session = { ...entry.session, state: { phase: "stopping" }, endpoint: undefined };
    this.emit(id);
    await entry.runnerd?.stop();
    entry.session = { ...entry.session, state: { phase: "stopped", at: this.clock.now() } };
    this.emit(id);
  }

  async amend(id: string, changes: Readonly<Record<string, string>>): Promise<void> {
    this.check();
    const entry = this.entries.get(id);
    if (!entry || isMember(entry.session)) throw new BackendNotFoundError(`no session ${id}`);
    const { meta } = entry.session;
    const annotations = { ...meta.annotations, ...amendable(changes) };
    entry.session = { ...entry.session, meta: { ...meta, annotations } };
    this.emit(id);
  }

  async resume(spec: BackendSessionSpec, signal: AbortSignal): Promise<BackendSession> {
    this.check();
    const entry = this.entries.get(spec.id);
    if (!entry?.runnerd) throw new BackendNotFoundError(`no session ${spec.id}`);
    if (entry.session.state.phase === "running") return entry.session;
    if (this.options.startDelayMs) await sleep(this.clock, this.options.startDelayMs, signal);
    const port = await entry.runnerd.listen();
    entry.session = { ...entry.session, state: { phase: "running" }, endpoint: { host: "127.0.0.1", port } };
    this.emit(spec.id);
    return entry.session;
  }

  async destroy(id: string): Promise<boolean> {
    this.check();
    const entry = this.entries.get(id);
    if (!entry) return false;
    this.entries.delete(id);
    await entry.runnerd?.stop();
    this.emit(id);
    return true;
  }

  watch(listener: SessionListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async owned(): Promise<OwnedObject[]> {
    this.check();
    return [...this.entries.keys()].flatMap((id) => [
      { kind: "container" as const, name: id, sessionId: id },
      { kind: "volume" as const, name: `${id}-workspace`, sessionId: id },
    ]);
  }

  // ---- test controls ---------------------------------------------------

  /** The fake runnerd of a running session. */
  runnerd(id: string): FakeRunnerd {
    const runnerd = this.entries.get(id)?.runnerd;
    if (!runnerd) throw new Error(`session ${id} has no runnerd`);
    return runnerd;
  }

  /**
   * The session's container dies. `silent`: its address stops answering
   * without closing connections (a vanished network namespace), so only the
   * backend's report can tell.
   */
  async fail(id: string, reason: FailureReason, options: { silent?: boolean; quiet?: boolean } = {}): Promise<void> {
    const entry = this.entries.get(id);
    if (!entry) throw new Error(`no session ${id}`);
    if (options.silent) entry.runnerd?.freeze();
    else await entry.runnerd?.stop();
    entry.session = { ...entry.session, state: { phase: "failed", reason }, endpoint: undefined };
    // `quiet`: the platform does not tell watchers (a missed event); lookups still see it.
    if (!options.quiet) this.emit(id);
  }

  /** Someone else removed the container; its workspace is left, as a Docker volume would be. */
  async removeOutOfBand(id: string): Promise<void> {
    await this.fail(id, {
      code: "removed",
      message: "the session container was removed by someone other than the spawner",
      at: null,
    });
  }

  setState(id: string, state: BackendState): void {
    const entry = this.entries.get(id);
    if (!entry) throw new Error(`no session ${id}`);
    entry.session = { ...entry.session, state };
    this.emit(id);
  }

  /** false: every call fails as if the platform were down. */
  setReachable(reachable: boolean): void {
    this.reachable = reachable;
  }

  async close(): Promise<void> {
    await Promise.all([...this.entries.values()].map((e) => e.runnerd?.stop()));
    this.entries.clear();
  }

  private check(): void {
    if (!this.reachable) throw new BackendUnavailableError("the in-memory platform is switched off");
  }

  private emit(id: string): void {
    const session = this.entries.get(id)?.session;
    for (const listener of this.listeners) listener(id, session, performance.now());
  }
}

function isMember(session: BackendSession): boolean {
  return session.meta.labels[LABELS.pool] !== undefined;
}
