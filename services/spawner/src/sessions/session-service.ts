import { setTimeout as delay } from "node:timers/promises";
import type { Clock, Logger } from "@sbx/edge";
import {
  ApiError,
  type PatchSessionRequestSchema,
  type RunnerdStatus,
  type Session,
  type SessionListQuerySchema,
  type SessionState,
} from "@sbx/protocol";
import pLimit from "p-limit";
import type { z } from "zod";
import type { BackendSession, Endpoint, SessionBackend } from "../backends/backend.js";
import { BackendConflictError } from "../backends/backend-errors.js";
import { runnerdEnvironment } from "../backends/runtime-contract.js";
import type { Config } from "../config.js";
import type { Metrics } from "../metrics.js";
import { RunnerdClient } from "../runnerd/runnerd-client.js";
import { runnerdToken, runnerdTokenSha256 } from "../runnerd/runnerd-token.js";
import { apiErrorOf, backendCall } from "./backend-error-map.js";
import { Deadline } from "./deadline.js";
import { metaOf, recordFromMeta, type SessionRecord } from "./session-record.js";
import type { KnownSession, SessionRegistry } from "./session-registry.js";
import { checkLifetime, type ParsedCreateRequest, type ResolvedSpec, resolveSpec } from "./session-spec.js";

/** How long one control call to runnerd may take (status, lease, env). */
const CONTROL_TIMEOUT_MS = 2000;
/** While waiting for runnerd, how often to ask the backend whether the session still runs. */
const BACKEND_CHECK_INTERVAL_MS = 100;
/** Runnerd status reads in flight at once for one list or sweep. */
const STATUS_CONCURRENCY = 16;

export interface ProxyTarget {
  record: SessionRecord;
  endpoint: Endpoint;
  token: string;
}

interface CreateResult {
  session: Session;
  created: boolean;
}

/**
 * Sessions: create (all or nothing, idempotent per id and spec), read,
 * list, change lifetime, delete, and where to proxy a session call. Holds
 * no truth of its own: the registry is a cache of the backend's objects.
 */
export class SessionService {
  /** Creates in flight in this replica, by session id. */
  private readonly creating = new Map<string, Promise<CreateResult>>();

  constructor(
    private readonly config: Config,
    private readonly backend: SessionBackend,
    private readonly registry: SessionRegistry,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  /** Counts of sessions this replica knows, by state (for metrics). */
  countsByState(): Record<SessionState, number> {
    const counts: Record<SessionState, number> = { starting: 0, ready: 0, terminating: 0, failed: 0 };
    for (const id of this.creating.keys()) if (!this.registry.cached(id)) counts.starting++;
    for (const known of this.registry.values()) counts[this.stateOf(known)]++;
    return counts;
  }

  isCreating(id: string): boolean {
    return this.creating.has(id);
  }

  async create(request: ParsedCreateRequest): Promise<CreateResult> {
    const started = performance.now();
    const spec = resolveSpec(request, this.config, this.clock.now());
    const id = spec.record.id;
    // One create per id at a time in this replica; the backend's unique names cover other replicas.
    const inFlight = this.creating.get(id);
    if (inFlight) {
      const result = await inFlight;
      if (result.session.id !== id || this.registry.cached(id)?.record.specDigest !== spec.record.specDigest) {
        throw new ApiError("SESSION_CONFLICT", `session ${id} exists with a different spec`);
      }
      return { session: result.session, created: false };
    }
    const attempt = this.createOnce(spec);
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
    const known = await this.registry.lookup(id);
    return this.view(known, await this.runnerdStatus(known));
  }

  async list(query: z.output<typeof SessionListQuerySchema>): Promise<Session[]> {
    await this.registry.adopt();
    const wanted = (query.label ?? []).map((pair) => {
      const at = pair.indexOf("=");
      return [pair.slice(0, at), pair.slice(at + 1)] as const;
    });
    const matches = this.registry
      .values()
      .filter(
        (k) =>
          (query.org === undefined || k.record.org === query.org) &&
          (query.owner === undefined || k.record.owner === query.owner) &&
          wanted.every(([key, value]) => k.record.labels[key] === value),
      );
    const limit = pLimit(STATUS_CONCURRENCY);
    const sessions = await Promise.all(
      matches.map((k) => limit(async () => this.view(k, await this.runnerdStatus(k)))),
    );
    return sessions.sort((a, b) => a.createdAt - b.createdAt);
  }

  async patch(id: string, request: z.output<typeof PatchSessionRequestSchema>): Promise<Session> {
    const target = await this.target(id);
    const known = await this.registry.lookup(id);
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
    await this.client(target.endpoint, id).setLease({ expiresAt, idleTimeoutMs }, CONTROL_TIMEOUT_MS);
    this.log.info({ sessionId: id, expiresAt, idleTimeoutMs }, "session lifetime changed");
    return this.view(known, await this.runnerdStatus(known));
  }

  async delete(id: string): Promise<void> {
    const removed = await this.backend.destroy(id);
    this.registry.forget(id);
    if (!removed) throw new ApiError("SESSION_NOT_FOUND", `no session ${id}`);
    this.log.info({ sessionId: id }, "session deleted");
  }

  /** Where to proxy a session call; a session that cannot take one says why at once. */
  async target(id: string): Promise<ProxyTarget> {
    if (this.creating.has(id) && this.registry.cached(id)?.state.phase !== "running") throw notReady(id);
    let known = await this.registry.lookup(id);
    // The cache may lag a session that another replica just started: ask once more before refusing.
    if (known.state.phase === "starting" || (known.state.phase === "running" && !known.endpoint)) {
      known = (await this.registry.refresh(id)) ?? known;
    }
    const endpoint = this.usable(known);
    return { record: known.record, endpoint, token: this.token(id) };
  }

  /**
   * After a failed connection to runnerd: ask the backend again. A session
   * another replica deleted is a 404, a dead one a 410, one still starting a
   * 409; only a session that runs is really an unreachable runnerd (502).
   */
  async explainUnreachable(id: string, error: unknown): Promise<ApiError> {
    let known: KnownSession | undefined;
    try {
      known = await this.registry.refresh(id);
    } catch (lookupError) {
      const mapped = apiErrorOf(lookupError, id, "other");
      return mapped instanceof ApiError ? mapped : new ApiError("INTERNAL", "could not look the session up");
    }
    if (!known) return new ApiError("SESSION_NOT_FOUND", `no session ${id}`);
    try {
      this.usable(known);
    } catch (refusal) {
      if (refusal instanceof ApiError) return refusal;
      throw refusal;
    }
    const reason = error instanceof Error ? error.message : String(error);
    return new ApiError("RUNNERD_UNREACHABLE", `the runnerd of session ${id} cannot be reached: ${reason}`);
  }

  /** The token this replica derives for a session's runnerd. */
  token(id: string): string {
    return runnerdToken(this.config.runnerdSecret, id);
  }

  /** runnerd's status of a running session; undefined when it cannot be had (the backend is asked again then). */
  async runnerdStatus(known: KnownSession): Promise<RunnerdStatus | undefined> {
    if (known.state.phase !== "running" || !known.endpoint) return undefined;
    try {
      return await this.client(known.endpoint, known.record.id).status(CONTROL_TIMEOUT_MS);
    } catch (error) {
      this.log.debug({ sessionId: known.record.id, err: error }, "runnerd status unavailable");
      // The change feed may have missed its death: a lookup settles it for the next caller.
      await this.registry.refresh(known.record.id).catch((lookupError: unknown) => {
        this.log.debug({ sessionId: known.record.id, err: lookupError }, "backend lookup failed");
      });
      return undefined;
    }
  }

  // ---- create ------------------------------------------------------------

  private async createOnce({ record, env, workspace }: ResolvedSpec): Promise<CreateResult> {
    const deadline = new Deadline(this.clock, this.config.createTimeoutMs);
    try {
      const existing = await backendCall(record.id, "create", () => this.backend.find(record.id));
      if (existing) return { session: await this.adoptExisting(existing, record.specDigest, deadline), created: false };
      await this.checkCapacity(record.id, record.org);
      let made: BackendSession;
      try {
        made = await this.backend.create(
          {
            id: record.id,
            image: record.image,
            meta: metaOf(record),
            runnerdEnv: runnerdEnvironment(
              runnerdTokenSha256(this.config.runnerdSecret, record.id),
              record.resources.memoryMb,
              this.config.runnerdEnv,
            ),
            resources: record.resources,
            workspace,
          },
          deadline.signal,
        );
      } catch (error) {
        if (!(error instanceof BackendConflictError)) throw apiErrorOf(error, record.id, "create");
        // Another replica (or request) created it first: behave like a repeat of that create.
        const winner = await backendCall(record.id, "create", () => this.backend.find(record.id));
        if (!winner) {
          throw new ApiError("SESSION_CONFLICT", `session ${record.id} is being created and removed concurrently`);
        }
        return { session: await this.adoptExisting(winner, record.specDigest, deadline), created: false };
      }
      try {
        if (!made.endpoint) throw new ApiError("RUNNERD_NOT_READY", `session ${record.id} has no address`);
        const status = await this.waitReady(record.id, made.endpoint, deadline);
        if (Object.keys(env).length > 0) {
          const result = await this.client(made.endpoint, record.id).patchEnv({ set: env }, CONTROL_TIMEOUT_MS);
          if (result.denied.length > 0) {
            throw new ApiError("RUNNERD_NOT_READY", "runnerd did not take the session environment");
          }
        }
        const known = this.registry.remember(record, made);
        this.log.info({ sessionId: record.id, org: record.org, image: record.image }, "session created");
        return { session: this.view(known, status, true), created: true };
      } catch (error) {
        await this.backend.destroy(record.id).catch((cleanup: unknown) => {
          this.log.error({ sessionId: record.id, err: cleanup }, "could not remove a failed session");
        });
        this.registry.forget(record.id);
        throw apiErrorOf(error, record.id, "create");
      }
    } finally {
      deadline.dispose();
    }
  }

  /** A create found the session already there (made by another replica or request): same spec → the same session. */
  private async adoptExisting(found: BackendSession, digest: string, deadline: Deadline): Promise<Session> {
    const record = recordFromMeta(found.meta);
    if (!record || record.specDigest !== digest) {
      throw new ApiError("SESSION_CONFLICT", `session ${found.id} exists with a different spec`);
    }
    let current: BackendSession | undefined = found;
    // The other create may still be starting it.
    while (current.state.phase === "starting" || !current.endpoint) {
      if (current.state.phase !== "starting" && current.state.phase !== "running") break;
      if (deadline.expired()) throw new ApiError("RUNNERD_NOT_READY", `session ${found.id} did not start in time`);
      await delay(50);
      current = await backendCall(found.id, "create", () => this.backend.find(found.id));
      if (!current) throw new ApiError("SESSION_CONFLICT", `session ${found.id} was removed while being created`);
    }
    const known = this.registry.remember(record, current);
    const endpoint = this.usable(known);
    const status = await this.waitReady(found.id, endpoint, deadline);
    return this.view(known, status, true);
  }

  /**
   * Waits for runnerd to answer within the create's deadline. While it does
   * not, the backend is asked whether the session still runs: one that died
   * or went away fails the create now, not at the deadline.
   */
  private async waitReady(id: string, endpoint: Endpoint, deadline: Deadline): Promise<RunnerdStatus> {
    const client = this.client(endpoint, id);
    let last: unknown;
    let checkedAt = this.clock.now();
    while (!deadline.expired()) {
      try {
        return await client.status(Math.max(100, Math.min(1000, deadline.remainingMs())));
      } catch (error) {
        last = error;
      }
      if (this.clock.now() - checkedAt >= BACKEND_CHECK_INTERVAL_MS) {
        checkedAt = this.clock.now();
        const current = await backendCall(id, "create", () => this.backend.find(id));
        if (!current || current.state.phase === "terminating") {
          throw new ApiError("SESSION_CONFLICT", `session ${id} was deleted while it was being created`, {
            cause: last,
          });
        }
        if (current.state.phase === "failed") {
          throw new ApiError(
            "SESSION_START_FAILED",
            `session ${id} failed to start: ${current.state.reason.message} before runnerd answered`,
            { cause: last, details: { reason: current.state.reason } },
          );
        }
      }
      await delay(15);
    }
    throw new ApiError("RUNNERD_NOT_READY", `runnerd of session ${id} did not answer within ${deadline.ms} ms`, {
      cause: last,
    });
  }

  private async checkCapacity(id: string, org: string): Promise<void> {
    const sessions = await backendCall(id, "create", () => this.backend.list());
    // Only sessions that hold resources count; the session being created does not count against
    // itself (another replica may have just made it).
    const active = sessions.filter((s) => (s.state.phase === "running" || s.state.phase === "starting") && s.id !== id);
    // Creates of this replica not yet visible in the backend count too.
    const inFlight = [...this.creating.keys()].filter((other) => other !== id && !active.some((s) => s.id === other));
    if (active.length + inFlight.length >= this.config.capacity.global) {
      throw new ApiError("CAPACITY_EXCEEDED", `${this.config.capacity.global} sessions are running`, {
        headers: { "Retry-After": "30" },
        details: { limit: this.config.capacity.global, scope: "global" },
      });
    }
    const ofOrg = active.filter((s) => recordFromMeta(s.meta)?.org === org).length;
    if (ofOrg >= this.config.capacity.perOrg) {
      throw new ApiError("CAPACITY_EXCEEDED", `org ${org} has ${this.config.capacity.perOrg} sessions running`, {
        headers: { "Retry-After": "30" },
        details: { limit: this.config.capacity.perOrg, scope: "org" },
      });
    }
  }

  // ---- views -------------------------------------------------------------

  /** The endpoint of a session that can take calls, or the one error that says why it cannot. */
  private usable(known: KnownSession): Endpoint {
    const id = known.record.id;
    const { state } = known;
    if (state.phase === "failed") {
      throw new ApiError("SESSION_FAILED", `session ${id} has failed: ${state.reason.message}`, {
        details: { reason: state.reason },
      });
    }
    if (state.phase === "terminating") throw new ApiError("SESSION_TERMINATING", `session ${id} is being deleted`);
    if (state.phase === "starting") throw notReady(id);
    if (!known.endpoint) {
      throw new ApiError("RUNNERD_UNREACHABLE", `session ${id} runs but has no address its runnerd can be reached at`);
    }
    return known.endpoint;
  }

  private client(endpoint: Endpoint, id: string): RunnerdClient {
    return new RunnerdClient(endpoint, this.token(id));
  }

  /** `answered`: runnerd has just answered this replica's create, so a create in flight is over. */
  private stateOf(known: KnownSession, answered = false): SessionState {
    if (!answered && this.creating.has(known.record.id) && known.state.phase !== "failed") return "starting";
    return known.state.phase === "running" ? "ready" : known.state.phase;
  }

  private view(known: KnownSession, status: RunnerdStatus | undefined, answered = false): Session {
    const { record, state } = known;
    return {
      id: record.id,
      org: record.org,
      owner: record.owner,
      profile: record.profile,
      image: record.image,
      state: this.stateOf(known, answered),
      reason: state.phase === "failed" ? { ...state.reason, at: state.reason.at ?? known.failedSeenAt ?? null } : null,
      createdAt: record.createdAt,
      expiresAt: status?.lease?.expiresAt ?? record.expiresAt,
      idleTimeoutMs: status?.lease?.idleTimeoutMs ?? record.idleTimeoutMs,
      lastActivityAt: status?.lastActivityAt ?? null,
      labels: record.labels,
      resources: record.resources,
      backend: this.backend.kind,
    };
  }
}

function notReady(id: string): ApiError {
  return new ApiError("SESSION_NOT_READY", `session ${id} is still starting`, { headers: { "Retry-After": "1" } });
}
