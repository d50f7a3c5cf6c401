import type { Clock, Logger } from "@sbx/edge";
import { ApiError } from "@sbx/protocol";
import type { BackendSession, BackendState, Endpoint, SessionBackend } from "../backends/backend.js";
import { recordFromMeta, type SessionRecord } from "./session-record.js";

/** A session as this replica last saw it in its backend. */
export interface KnownSession {
  record: SessionRecord;
  state: BackendState;
  endpoint: Endpoint | undefined;
  /** Where its own connections come from (see BackendSession.address). */
  address: string | undefined;
  /** When this replica first saw it failed: the failure time where the backend cannot tell it. */
  failedSeenAt: number | undefined;
}

/**
 * Told when a session stops being reachable where it was (failed, terminating, gone, or its
 * address changed or went away), so its live streams and kept-alive connections can be ended.
 */
export type LossListener = (id: string, why: "failed" | "terminating" | "gone" | "moved") => void;

/** How long a session this replica deleted stays deleted against stale backend reports. */
const TOMBSTONE_MS = 10_000;

/**
 * The replica's cache of its backend's sessions. Holds no truth: it is
 * refilled on a miss, by periodic adoption and by the backend's change feed,
 * so any replica can serve any session and learns within moments when one
 * dies.
 */
export class SessionRegistry {
  private readonly known = new Map<string, KnownSession>();
  /** Sessions this replica deleted, by id, with when: a late report must not bring them back. */
  private readonly deleted = new Map<string, number>();
  private readonly lossListeners = new Set<LossListener>();
  /**
   * When (performance.now()) the freshest account of each session was read: a report read
   * before it is stale (a lookup that began before a resume, landing after it) and is ignored.
   */
  private readonly freshAt = new Map<string, number>();
  /** Aborted when the session is lost: what a call waiting on its runnerd listens to. */
  private readonly lossSignals = new Map<string, AbortController>();

  constructor(
    private readonly backend: SessionBackend,
    private readonly clock: Clock,
    private readonly log: Logger,
    /** How long a failed session stays readable, even once its backend objects are gone. */
    private readonly failedRetentionMs: number,
  ) {}

  onLoss(listener: LossListener): void {
    this.lossListeners.add(listener);
  }

  /**
   * A signal aborted the moment this replica learns the session is lost (failed, terminating,
   * gone, moved): a wait on its runnerd's old address ends then, not at its timeout.
   */
  lossSignal(id: string): AbortSignal {
    let controller = this.lossSignals.get(id);
    if (!controller) {
      controller = new AbortController();
      this.lossSignals.set(id, controller);
    }
    return controller.signal;
  }

  /** Follows the backend's change feed until the returned function is called. */
  follow(): () => void {
    return this.backend.watch((id, session, observedAt) => this.apply(id, session, { observedAt }));
  }

  cached(id: string): KnownSession | undefined {
    return this.known.get(id);
  }

  values(): KnownSession[] {
    return [...this.known.values()];
  }

  /** The session from the cache, or from the backend on a miss; SESSION_NOT_FOUND when it has none. */
  async lookup(id: string): Promise<KnownSession> {
    const cached = this.known.get(id);
    if (cached) return cached;
    const known = await this.refresh(id);
    if (!known) throw new ApiError("SESSION_NOT_FOUND", `no session ${id}`);
    return known;
  }

  /** Asks the backend again and updates the cache. */
  async refresh(id: string): Promise<KnownSession | undefined> {
    const observedAt = performance.now();
    this.apply(id, await this.backend.find(id), { authoritative: true, observedAt });
    return this.known.get(id);
  }

  /** Lists the backend and replaces the cache: how sessions of other replicas (or an earlier run) are adopted. */
  async adopt(): Promise<number> {
    const observedAt = performance.now();
    const found = await this.backend.list();
    const seen = new Set<string>();
    for (const session of found) {
      this.apply(session.id, session, { authoritative: true, observedAt });
      if (this.known.has(session.id)) seen.add(session.id);
    }
    for (const id of this.known.keys()) {
      if (!seen.has(id)) this.apply(id, undefined, { authoritative: true, observedAt });
    }
    return seen.size;
  }

  /** A session this replica made (or adopted while creating). */
  remember(record: SessionRecord, session: BackendSession): KnownSession {
    this.deleted.delete(record.id);
    this.freshAt.set(record.id, performance.now());
    const known = this.toKnown(record, session, undefined);
    this.known.set(record.id, known);
    return known;
  }

  /** A session this replica deleted. */
  forget(id: string): void {
    this.deleted.set(id, this.clock.now());
    this.apply(id, undefined, { authoritative: true, deleted: true, observedAt: performance.now() });
  }

  /**
   * Takes one report of a session. A report may be stale by the time it lands: one read before
   * the freshest account this replica has is ignored, and one about a session this replica just
   * deleted is ignored unless it is a newer session of the same id.
   * Returns whether the session is now known.
   */
  apply(
    id: string,
    session: BackendSession | undefined,
    options: { authoritative?: boolean; deleted?: boolean; observedAt?: number } = {},
  ): boolean {
    const before = this.known.get(id);
    const observedAt = options.observedAt ?? performance.now();
    if (observedAt < (this.freshAt.get(id) ?? Number.NEGATIVE_INFINITY)) return before !== undefined;
    this.freshAt.set(id, observedAt);
    if (!session) {
      // A failed session whose objects someone else removed stays readable for its retention,
      // rather than turning into a 404 that explains nothing.
      if (before?.state.phase === "failed" && !options.deleted && this.stillRetained(before)) return true;
      this.known.delete(id);
      if (before && isReachable(before.state)) this.lost(id, "gone");
      this.lossSignals.delete(id);
      // Kept while the tombstone lives (a late report must still be ordered); then forgotten.
      if (!this.deleted.has(id)) this.freshAt.delete(id);
      return false;
    }
    const record = recordFromMeta(session.meta);
    if (!record) {
      this.log.warn({ sessionId: id }, "backend object with incomplete sbx labels ignored");
      return false;
    }
    const deletedAt = this.deleted.get(id);
    if (deletedAt !== undefined) {
      if (this.clock.now() - deletedAt > TOMBSTONE_MS) this.deleted.delete(id);
      else if (record.createdAt <= deletedAt && !options.authoritative) return false;
    }
    const known = this.toKnown(record, session, before);
    this.known.set(id, known);
    if (before && isReachable(before.state) && !isReachable(known.state)) {
      this.lost(id, known.state.phase === "failed" ? "failed" : "terminating");
    } else if (before?.endpoint && !sameEndpoint(before.endpoint, known.endpoint)) {
      this.lost(id, "moved");
    }
    if (known.state.phase === "failed" && before?.state.phase !== "failed") {
      this.log.warn({ sessionId: id, reason: known.state.reason }, "session failed");
    }
    return true;
  }

  private stillRetained(known: KnownSession): boolean {
    if (known.state.phase !== "failed") return false;
    const failedAt = known.state.reason.at ?? known.failedSeenAt ?? this.clock.now();
    return this.clock.now() - failedAt < this.failedRetentionMs;
  }

  private toKnown(record: SessionRecord, session: BackendSession, before: KnownSession | undefined): KnownSession {
    const failed = session.state.phase === "failed";
    const sameSession = before !== undefined && before.record.createdAt === record.createdAt;
    return {
      record,
      state: session.state,
      endpoint: session.endpoint,
      address: session.address ?? session.endpoint?.host,
      failedSeenAt: failed ? ((sameSession ? before.failedSeenAt : undefined) ?? this.clock.now()) : undefined,
    };
  }

  private lost(id: string, why: "failed" | "terminating" | "gone" | "moved"): void {
    const controller = this.lossSignals.get(id);
    this.lossSignals.delete(id);
    controller?.abort(new Error(`the session is ${why === "moved" ? "elsewhere now" : why}`));
    for (const listener of this.lossListeners) listener(id, why);
  }
}

function sameEndpoint(a: Endpoint, b: Endpoint | undefined): boolean {
  return b !== undefined && a.host === b.host && a.port === b.port;
}

function isReachable(state: BackendState): boolean {
  return state.phase === "running" || state.phase === "starting";
}
