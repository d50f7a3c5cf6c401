import { setTimeout as delay } from "node:timers/promises";
import type { Clock, Logger } from "@sbx/edge";
import {
  ApiError,
  type PatchSessionRequestSchema,
  type RunnerdStatus,
  type Session,
  type SessionListQuerySchema,
} from "@sbx/protocol";
import type { z } from "zod";
import { BackendConflictError, type BackendSession, type Endpoint, type SessionBackend } from "../backends/backend.js";
import { RUNNERD_PORT } from "../backends/docker/docker-backend.js";
import type { Config } from "../config.js";
import type { Metrics } from "../metrics.js";
import { RunnerdClient } from "../runnerd/runnerd-client.js";
import { runnerdToken, runnerdTokenSha256 } from "../runnerd/runnerd-token.js";
import { labelsOf, recordFromLabels, type SessionRecord } from "./session-record.js";
import { checkLifetime, type ParsedCreateRequest, resolveSpec } from "./session-spec.js";

/** How long one control call to runnerd may take (status, lease, env). */
const CONTROL_TIMEOUT_MS = 2000;
/** While waiting for runnerd, how often to ask the backend whether the container still runs. */
const CONTAINER_CHECK_INTERVAL_MS = 100;

interface Known {
  record: SessionRecord;
  status: BackendSession["status"];
  endpoint: Endpoint | undefined;
}

export interface ProxyTarget {
  record: SessionRecord;
  endpoint: Endpoint;
  token: string;
}

export type ReapReason = "ttl" | "idle" | "lifetime" | "exited";

/**
 * Sessions: create (all or nothing, idempotent per id and spec), read,
 * list, change lifetime, delete, and the sweeps that end them. Holds no
 * truth of its own: its map is a cache of the backend's objects, refilled on
 * any miss and by periodic adoption, so any replica can serve any session.
 */
export class SessionService {
  private readonly known = new Map<string, Known>();
  /** Creates in flight in this replica, by session id. */
  private readonly creating = new Map<string, Promise<{ session: Session; created: boolean }>>();

  constructor(
    private readonly config: Config,
    private readonly backend: SessionBackend,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  /** Counts of sessions this replica knows, by state (for metrics). */
  countsByState(): Record<string, number> {
    const counts: Record<string, number> = { starting: 0, ready: 0, exited: 0 };
    for (const id of this.creating.keys()) if (!this.known.has(id)) counts.starting = (counts.starting ?? 0) + 1;
    for (const k of this.known.values()) {
      const state = k.status === "running" ? "ready" : k.status;
      counts[state] = (counts[state] ?? 0) + 1;
    }
    return counts;
  }

  async create(request: ParsedCreateRequest): Promise<{ session: Session; created: boolean }> {
    const started = performance.now();
    const spec = resolveSpec(request, this.config, this.clock.now());
    const id = spec.record.id;
    // One create per id at a time in this replica; the backend's unique names cover other replicas.
    const inFlight = this.creating.get(id);
    if (inFlight) {
      const result = await inFlight;
      return this.repeat(result.session, spec.record.specDigest);
    }
    const attempt = this.createOnce(spec.record, spec.env);
    this.creating.set(id, attempt);
    try {
      const result = await attempt;
      this.metrics.creates.inc({ outcome: result.created ? "created" : "existing" });
      if (result.created) this.metrics.createSeconds.observe((performance.now() - started) / 1000);
      return result;
    } catch (error) {
      this.metrics.creates.inc({ outcome: error instanceof ApiError && error.status < 500 ? "refused" : "failed" });
      throw error;
    } finally {
      this.creating.delete(id);
    }
  }

  async get(id: string): Promise<Session> {
    const known = await this.lookup(id);
    return this.view(known, await this.runnerdStatus(known));
  }

  async list(query: z.output<typeof SessionListQuerySchema>): Promise<Session[]> {
    await this.adopt();
    const wanted = (query.label ?? []).map((pair) => {
      const at = pair.indexOf("=");
      return [pair.slice(0, at), pair.slice(at + 1)] as const;
    });
    const matches = [...this.known.values()].filter(
      (k) =>
        (query.org === undefined || k.record.org === query.org) &&
        (query.owner === undefined || k.record.owner === query.owner) &&
        wanted.every(([key, value]) => k.record.labels[key] === value),
    );
    const sessions = await mapLimited(matches, 16, async (k) => this.view(k, await this.runnerdStatus(k)));
    return sessions.sort((a, b) => a.createdAt - b.createdAt);
  }

  async patch(id: string, request: z.output<typeof PatchSessionRequestSchema>): Promise<Session> {
    const known = await this.lookup(id);
    const client = this.client(known);
    const current = this.view(known, await this.runnerdStatus(known));
    const now = this.clock.now();
    const expiresAt = request.ttlMs !== undefined ? now + request.ttlMs : (request.expiresAt ?? current.expiresAt);
    const idleTimeoutMs = request.idleTimeoutMs ?? current.idleTimeoutMs;
    checkLifetime(expiresAt - now, request.idleTimeoutMs, this.config);
    const latest = known.record.createdAt + this.config.lifetime.maxLifetimeMs;
    if (expiresAt > latest) {
      throw new ApiError("VALIDATION_FAILED", `a session may live at most ${this.config.lifetime.maxLifetimeMs} ms`, {
        details: { issues: [{ path: "expiresAt", message: `at most ${latest}` }] },
      });
    }
    if (expiresAt <= now) {
      throw new ApiError("VALIDATION_FAILED", "expiresAt must be in the future (DELETE ends a session now)", {
        details: { issues: [{ path: "expiresAt", message: "must be in the future" }] },
      });
    }
    if (!client) throw new ApiError("SESSION_NOT_READY", `session ${id} has no runnerd address yet`);
    await client.setLease({ expiresAt, idleTimeoutMs }, CONTROL_TIMEOUT_MS);
    this.log.info({ sessionId: id, expiresAt, idleTimeoutMs }, "session lifetime changed");
    return this.view(known, await this.runnerdStatus(known));
  }

  async delete(id: string): Promise<void> {
    const removed = await this.backend.destroy(id);
    this.known.delete(id);
    if (!removed) throw new ApiError("SESSION_NOT_FOUND", `no session ${id}`);
    this.log.info({ sessionId: id }, "session deleted");
  }

  /** Where to proxy a session call. */
  async target(id: string): Promise<ProxyTarget> {
    if (this.creating.has(id) && !this.known.has(id)) {
      throw new ApiError("SESSION_NOT_READY", `session ${id} is still starting`, { headers: { "Retry-After": "1" } });
    }
    const known = await this.lookup(id);
    if (known.status === "exited") throw new ApiError("SESSION_NOT_READY", `session ${id} has stopped`);
    if (known.endpoint === undefined || known.status === "starting") {
      throw new ApiError("SESSION_NOT_READY", `session ${id} is still starting`, { headers: { "Retry-After": "1" } });
    }
    return { record: known.record, endpoint: known.endpoint, token: this.token(id) };
  }

  /**
   * After a failed proxy connection: a session another replica deleted is a
   * 404, one that is still starting a 409; only then is it really runnerd
   * that cannot be reached.
   */
  async explainUnreachable(id: string, error: unknown): Promise<ApiError> {
    this.known.delete(id);
    const found = await this.backend.find(id).catch(() => undefined);
    if (!found) return new ApiError("SESSION_NOT_FOUND", `no session ${id}`);
    const record = recordFromLabels(found.labels);
    const young = record !== undefined && this.clock.now() - record.createdAt < this.config.createTimeoutMs;
    if (found.status !== "running" || young) {
      return new ApiError("SESSION_NOT_READY", `session ${id} is not ready`, { headers: { "Retry-After": "1" } });
    }
    const reason = error instanceof Error ? error.message : String(error);
    return new ApiError("RUNNERD_UNREACHABLE", `the runnerd of session ${id} cannot be reached: ${reason}`);
  }

  /** Lists the backend and refreshes the cache: how sessions of other replicas (or a previous run) are adopted. */
  async adopt(): Promise<number> {
    const found = await this.backend.list();
    const seen = new Set<string>();
    for (const b of found) {
      const record = recordFromLabels(b.labels);
      if (!record) {
        this.log.warn({ sessionId: b.id }, "container with incomplete sbx labels ignored");
        continue;
      }
      seen.add(record.id);
      this.known.set(record.id, { record, status: b.status, endpoint: b.endpoint });
    }
    for (const id of this.known.keys()) if (!seen.has(id)) this.known.delete(id);
    return seen.size;
  }

  /** Ends sessions past their TTL or lifetime, idle ones, and ones whose container stopped. */
  async sweep(): Promise<Array<{ id: string; reason: ReapReason }>> {
    await this.adopt();
    const now = this.clock.now();
    const reaped: Array<{ id: string; reason: ReapReason }> = [];
    await mapLimited([...this.known.values()], 16, async (known) => {
      if (this.creating.has(known.record.id)) return;
      const reason = await this.reapReason(known, now);
      if (!reason) return;
      try {
        await this.backend.destroy(known.record.id);
        this.known.delete(known.record.id);
        reaped.push({ id: known.record.id, reason });
        this.metrics.reaped.inc({ reason });
        this.log.info({ sessionId: known.record.id, reason }, "session reaped");
      } catch (error) {
        this.log.warn({ sessionId: known.record.id, err: error }, "could not reap session");
      }
    });
    this.metrics.sweeps.inc();
    return reaped;
  }

  /** The token this replica derives for a session's runnerd. */
  token(id: string): string {
    return runnerdToken(this.config.runnerdSecret, id);
  }

  // ---- internals -------------------------------------------------------

  private async createOnce(record: SessionRecord, env: Record<string, string>) {
    const deadline = this.clock.now() + this.config.createTimeoutMs;
    const existing = await this.backend.find(record.id);
    if (existing) return { session: await this.adoptExisting(existing, record.specDigest, deadline), created: false };
    await this.checkCapacity(record.id, record.org);
    let made: BackendSession;
    try {
      made = await this.backend.create(
        {
          id: record.id,
          image: record.image,
          labels: labelsOf(record),
          runnerdEnv: {
            ...this.config.runnerdEnv,
            RUNNERD_TOKEN_SHA256: runnerdTokenSha256(this.config.runnerdSecret, record.id),
            RUNNERD_ROOT: "/workspace",
            RUNNERD_HOST: "0.0.0.0",
            RUNNERD_PORT: String(RUNNERD_PORT),
          },
          resources: record.resources,
        },
        deadline,
      );
    } catch (error) {
      if (!(error instanceof BackendConflictError)) throw error;
      // Another replica (or request) created it first: behave like a repeat of that create.
      const winner = await this.backend.find(record.id);
      if (!winner)
        throw new ApiError("SESSION_CONFLICT", `session ${record.id} is being created and removed concurrently`);
      return { session: await this.adoptExisting(winner, record.specDigest, deadline), created: false };
    }
    const known: Known = { record, status: made.status, endpoint: made.endpoint };
    try {
      const status = await this.waitReady(known, deadline);
      if (Object.keys(env).length > 0) {
        const client = this.client(known);
        const result = await client?.patchEnv({ set: env }, CONTROL_TIMEOUT_MS);
        if (!result || result.denied.length > 0) {
          throw new ApiError("RUNNERD_NOT_READY", "runnerd did not take the session environment");
        }
      }
      this.known.set(record.id, known);
      this.log.info({ sessionId: record.id, org: record.org, image: record.image }, "session created");
      return { session: this.view(known, status), created: true };
    } catch (error) {
      await this.backend.destroy(record.id).catch((cleanup: unknown) => {
        this.log.error({ sessionId: record.id, err: cleanup }, "could not remove a failed session");
      });
      throw error;
    }
  }

  private async adoptExisting(found: BackendSession, digest: string, deadline: number): Promise<Session> {
    const record = recordFromLabels(found.labels);
    if (!record || record.specDigest !== digest) {
      throw new ApiError("SESSION_CONFLICT", `session ${found.id} exists with a different spec`);
    }
    let known: Known = { record, status: found.status, endpoint: found.endpoint };
    // The other create may still be starting the container.
    while (known.endpoint === undefined || known.status === "starting") {
      if (this.clock.now() > deadline)
        throw new ApiError("RUNNERD_NOT_READY", `session ${found.id} did not start in time`);
      await delay(50);
      const again = await this.backend.find(found.id);
      if (!again) throw new ApiError("SESSION_CONFLICT", `session ${found.id} was removed while being created`);
      known = { record, status: again.status, endpoint: again.endpoint };
    }
    const status = await this.waitReady(known, deadline);
    this.known.set(record.id, known);
    return this.view(known, status);
  }

  private repeat(session: Session, digest: string): { session: Session; created: boolean } {
    const known = this.known.get(session.id);
    if (!known || known.record.specDigest !== digest) {
      throw new ApiError("SESSION_CONFLICT", `session ${session.id} exists with a different spec`);
    }
    return { session, created: false };
  }

  private async waitReady(known: Known, deadline: number): Promise<RunnerdStatus> {
    const client = this.client(known);
    if (!client) throw new ApiError("RUNNERD_NOT_READY", `session ${known.record.id} has no address`);
    let last: unknown;
    let checkedAt = this.clock.now();
    while (this.clock.now() < deadline) {
      try {
        return await client.status(Math.max(100, Math.min(1000, deadline - this.clock.now())));
      } catch (error) {
        last = error;
      }
      // A container that stopped (or went away) will never answer: say so now, not at the deadline.
      if (this.clock.now() - checkedAt >= CONTAINER_CHECK_INTERVAL_MS) {
        checkedAt = this.clock.now();
        const current = await this.backend.find(known.record.id);
        if (current?.status !== "running" && current?.status !== "starting") {
          throw new ApiError(
            "RUNNERD_NOT_READY",
            `the container of session ${known.record.id} ${current ? "stopped" : "was removed"} before runnerd answered`,
            { cause: last },
          );
        }
      }
      await delay(15);
    }
    throw new ApiError(
      "RUNNERD_NOT_READY",
      `runnerd of session ${known.record.id} did not answer within ${this.config.createTimeoutMs} ms`,
      { cause: last },
    );
  }

  private async checkCapacity(id: string, org: string): Promise<void> {
    // The session being created does not count against itself: another replica may have just made it.
    const active = (await this.backend.list()).filter((b) => b.status !== "exited" && b.id !== id);
    // Creates of this replica not yet visible in the backend count too.
    const inFlight = [...this.creating.keys()].filter((other) => other !== id && !active.some((b) => b.id === other));
    if (active.length + inFlight.length >= this.config.capacity.global) {
      throw new ApiError("CAPACITY_EXCEEDED", `${this.config.capacity.global} sessions are running`, {
        headers: { "Retry-After": "30" },
        details: { limit: this.config.capacity.global, scope: "global" },
      });
    }
    const ofOrg = active.filter((b) => recordFromLabels(b.labels)?.org === org).length;
    if (ofOrg >= this.config.capacity.perOrg) {
      throw new ApiError("CAPACITY_EXCEEDED", `org ${org} has ${this.config.capacity.perOrg} sessions running`, {
        headers: { "Retry-After": "30" },
        details: { limit: this.config.capacity.perOrg, scope: "org" },
      });
    }
  }

  private async lookup(id: string): Promise<Known> {
    const cached = this.known.get(id);
    if (cached) return cached;
    const found = await this.backend.find(id);
    const record = found ? recordFromLabels(found.labels) : undefined;
    if (!found || !record) throw new ApiError("SESSION_NOT_FOUND", `no session ${id}`);
    const known = { record, status: found.status, endpoint: found.endpoint };
    this.known.set(id, known);
    return known;
  }

  private client(known: Known): RunnerdClient | undefined {
    return known.endpoint ? new RunnerdClient(known.endpoint, this.token(known.record.id)) : undefined;
  }

  private async runnerdStatus(known: Known): Promise<RunnerdStatus | undefined> {
    if (known.status !== "running") return undefined;
    try {
      return await this.client(known)?.status(CONTROL_TIMEOUT_MS);
    } catch (error) {
      this.log.debug({ sessionId: known.record.id, err: error }, "runnerd status unavailable");
      return undefined;
    }
  }

  private view(known: Known, status: RunnerdStatus | undefined): Session {
    const { record } = known;
    const state =
      this.creating.has(record.id) && !this.known.has(record.id)
        ? "starting"
        : known.status === "running"
          ? "ready"
          : known.status;
    return {
      id: record.id,
      org: record.org,
      owner: record.owner,
      profile: record.profile,
      image: record.image,
      state,
      createdAt: record.createdAt,
      expiresAt: status?.lease?.expiresAt ?? record.expiresAt,
      idleTimeoutMs: status?.lease?.idleTimeoutMs ?? record.idleTimeoutMs,
      lastActivityAt: status?.lastActivityAt ?? null,
      labels: record.labels,
      resources: record.resources,
      backend: this.backend.kind,
    };
  }

  private async reapReason(known: Known, now: number): Promise<ReapReason | undefined> {
    const { record } = known;
    if (known.status === "exited") return "exited";
    if (now >= record.createdAt + this.config.lifetime.maxLifetimeMs) return "lifetime";
    const status = await this.runnerdStatus(known);
    const expiresAt = status?.lease?.expiresAt ?? record.expiresAt;
    if (now >= expiresAt) return "ttl";
    if (!status) return undefined; // idleness needs runnerd's activity clock
    const idleTimeoutMs = status.lease?.idleTimeoutMs ?? record.idleTimeoutMs;
    if (status.liveExecs === 0 && now - status.lastActivityAt >= idleTimeoutMs) return "idle";
    return undefined;
  }
}

/** Runs `fn` over `items` with at most `limit` at once, keeping order. */
async function mapLimited<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < items.length; i = next++) {
      const item = items[i];
      if (item !== undefined) results[i] = await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
