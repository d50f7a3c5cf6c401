import { type Clock, type Logger, sleep } from "@sbx/edge";
import {
  ApiError,
  egressAnnotations,
  type Lease,
  leaseAnnotations,
  type PatchSessionRequestSchema,
  type RunnerdStatus,
  type Session,
  type SessionListQuerySchema,
  type SessionState,
  sessionProxyCredential,
} from "@sbx/protocol";
import pLimit from "p-limit";
import type { z } from "zod";
import type { BackendSession, BackendSessionSpec, Endpoint, SessionBackend } from "../backends/backend.js";
import { BackendConflictError } from "../backends/backend-errors.js";
import { runnerdEnvironment } from "../backends/runtime-contract.js";
import type { Config } from "../config.js";
import type { Metrics } from "../metrics.js";
import { RunnerdClient } from "../runnerd/runnerd-client.js";
import { runnerdToken, runnerdTokenSha256 } from "../runnerd/runnerd-token.js";
import { apiErrorOf, backendCall } from "./backend-error-map.js";
import { Deadline } from "./deadline.js";
import { resolveEgress } from "./egress-policy.js";
import { metaOf, recordFromMeta, type SessionRecord } from "./session-record.js";
import type { KnownSession, SessionRegistry } from "./session-registry.js";
import { checkLifetime, type ParsedCreateRequest, type ResolvedSpec, resolveSpec } from "./session-spec.js";
import { SingleFlight } from "./single-flight.js";
import type { WarmPool } from "./warm-pool.js";

/** How long one control call to runnerd may take (status, env). */
const CONTROL_TIMEOUT_MS = 2000;
/** While waiting for runnerd, how often to ask the backend whether the session still runs. */
const BACKEND_CHECK_INTERVAL_MS = 100;
/** Runnerd status reads in flight at once for one list or sweep. */
const STATUS_CONCURRENCY = 16;

/** What the spawner knows of the signed request it serves. */
export interface SignedRequest {
  requestId: string;
  signedAt: number;
}

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
  private readonly creating = new SingleFlight<string, CreateResult>();
  /** Stops and resumes in flight in this replica: concurrent calls share one. */
  private readonly stopping = new SingleFlight<string, Session>();
  private readonly resuming = new SingleFlight<string, Session>();

  constructor(
    private readonly config: Config,
    private readonly backend: SessionBackend,
    private readonly registry: SessionRegistry,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly pool?: WarmPool,
  ) {}

  /** Counts of sessions this replica knows, by state (for metrics). */
  countsByState(): Record<SessionState, number> {
    const counts: Record<SessionState, number> = {
      starting: 0,
      ready: 0,
      stopping: 0,
      stopped: 0,
      resuming: 0,
      terminating: 0,
      failed: 0,
    };
    for (const id of this.creating.keys()) if (!this.registry.cached(id)) counts.starting++;
    for (const known of this.registry.values()) counts[this.stateOf(known)]++;
    return counts;
  }

  isCreating(id: string): boolean {
    return this.creating.has(id);
  }

  async create(request: ParsedCreateRequest, signed?: SignedRequest): Promise<CreateResult> {
    const started = performance.now();
    const spec = resolveSpec(request, this.config, this.clock.now(), signed?.requestId);
    const id = spec.record.id;
    // One create per id at a time in this replica; the backend's unique names cover other replicas.
    // A create of the same id already in flight here: its outcome answers this one too.
    const inFlight = this.creating.get(id);
    if (inFlight) {
      const result = await inFlight;
      if (result.session.id !== id || this.registry.cached(id)?.record.specDigest !== spec.record.specDigest) {
        throw new ApiError("SESSION_CONFLICT", `session ${id} exists with a different spec`);
      }
      return { session: result.session, created: false };
    }
    try {
      const result = await this.creating.run(id, () => this.createOnce(spec));
      this.metrics.creates.inc({ outcome: result.created ? "created" : "existing" });
      if (result.created) this.metrics.createSeconds.observe((performance.now() - started) / 1000);
      return result;
    } catch (error) {
      this.metrics.creates.inc({ outcome: error instanceof ApiError && error.status < 500 ? "refused" : "failed" });
      throw error;
    }
  }

  async get(id: string): Promise<Session> {
    const known = await this.registry.lookup(id);
    const status = await this.runnerdStatus(known);
    return this.view(status ? known : this.current(known), status);
  }

  /**
   * The session as this replica knows it now: after a call to its runnerd failed, the registry
   * may have learnt of its death (or deletion) meanwhile, and the record read before is stale.
   */
  private current(known: KnownSession): KnownSession {
    const now = this.registry.cached(known.record.id);
    if (!now) throw new ApiError("SESSION_NOT_FOUND", `no session ${known.record.id}`);
    return now;
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
      matches.map((k) =>
        limit(async () => {
          const status = await this.runnerdStatus(k);
          return status ? this.view(k, status) : this.view(this.registry.cached(k.record.id) ?? k, undefined);
        }),
      ),
    );
    return sessions.sort((a, b) => a.createdAt - b.createdAt);
  }

  /**
   * Changes a session's lifetime and/or egress policy, running or stopped (a stopped session is not
   * woken for it). Both are written into the session's own platform objects: nothing inside the
   * session can change them, and every replica (and the gateway, through its grant) reads them there.
   */
  async patch(
    id: string,
    request: z.output<typeof PatchSessionRequestSchema>,
    signed?: SignedRequest,
  ): Promise<Session> {
    const known = await this.registry.lookup(id);
    if (known.state.phase === "failed" || known.state.phase === "terminating") this.usable(known);
    const changes: Record<string, string> = {};
    if (request.ttlMs !== undefined || request.expiresAt !== undefined || request.idleTimeoutMs !== undefined) {
      Object.assign(changes, leaseAnnotations(this.leaseAfter(known, request, signed)));
    }
    const network = request.network === undefined ? undefined : resolveEgress(request.network, this.config);
    if (network) Object.assign(changes, egressAnnotations(network));
    await this.actOnce(known, signed);
    await backendCall(id, "other", () => this.backend.amend(id, changes));
    this.log.info({ sessionId: id, changes }, "session changed");
    if (network) {
      // Audited: who may reach what changed.
      this.log.info({ sessionId: id, before: known.record.network, after: network }, "session egress policy changed");
    }
    const changed = (await this.registry.refresh(id)) ?? known;
    return this.view(changed, await this.runnerdStatus(changed));
  }

  /** The lease a PATCH asks for, checked against the deployment's bounds. */
  private leaseAfter(
    known: KnownSession,
    request: z.output<typeof PatchSessionRequestSchema>,
    signed: SignedRequest | undefined,
  ): Lease {
    // `ttlMs` counts from when the request was signed: the very same request resent later sets
    // the very same lease, never a longer one.
    const now = signed?.signedAt ?? this.clock.now();
    const expiresAt = request.ttlMs !== undefined ? now + request.ttlMs : (request.expiresAt ?? known.record.expiresAt);
    const idleTimeoutMs = request.idleTimeoutMs ?? known.record.idleTimeoutMs;
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
    return { expiresAt, idleTimeoutMs };
  }

  async delete(id: string): Promise<void> {
    const removed = await this.backend.destroy(id);
    this.registry.forget(id);
    if (!removed) throw new ApiError("SESSION_NOT_FOUND", `no session ${id}`);
    this.log.info({ sessionId: id }, "session deleted");
  }

  /**
   * Where to proxy a session call; a session that cannot take one says why at once. A stopped
   * session is resumed first (unless SPAWNER_AUTO_RESUME is off).
   */
  async target(id: string): Promise<ProxyTarget> {
    if (this.creating.has(id) && this.registry.cached(id)?.state.phase !== "running") throw notReady(id);
    const inFlight = this.resuming.get(id);
    if (inFlight) await inFlight;
    let known = await this.registry.lookup(id);
    // The cache may lag a session that another replica just started: ask once more before refusing.
    if (known.state.phase === "starting" || (known.state.phase === "running" && !known.endpoint)) {
      known = (await this.registry.refresh(id)) ?? known;
    }
    if (known.state.phase === "stopped" && this.config.autoResume) {
      await this.resume(id);
      known = await this.registry.lookup(id);
    }
    const endpoint = this.usable(known);
    return { record: known.record, endpoint, token: this.token(known.record.runnerdKey) };
  }

  /**
   * Stops a session, keeping its workspace, env and exec records; running execs end
   * `interrupted`. Idempotent; concurrent calls share one stop.
   */
  stop(id: string, signed?: SignedRequest): Promise<Session> {
    return this.stopping.run(id, () => this.stopOnce(id, signed));
  }

  /** Starts a stopped session again; concurrent calls (and calls that resume it) share one resume. */
  resume(id: string): Promise<Session> {
    return this.resuming.run(id, () => this.resumeOnce(id));
  }

  private async stopOnce(id: string, signed?: SignedRequest): Promise<Session> {
    // Fresh from the platform: another replica may be stopping it (or have stopped it) right now.
    const fresh = async () => {
      const found = await this.registry.refresh(id);
      if (!found) throw new ApiError("SESSION_NOT_FOUND", `no session ${id}`);
      return found;
    };
    let known = await fresh();
    // A stop under way elsewhere: this one ends when that one does.
    const waitUntil = this.clock.now() + (this.config.terminationGraceSeconds + 30) * 1000;
    while (known.state.phase === "stopping" && this.clock.now() < waitUntil) {
      await sleep(this.clock, 200);
      known = await fresh();
    }
    if (known.state.phase === "stopped") return this.view(known, undefined);
    if (known.state.phase === "running" && !this.canStop(known.record)) {
      throw new ApiError(
        "SESSION_NOT_STOPPABLE",
        `session ${id} cannot be stopped: its workspace would not outlive it (its profile needs a persistent workspace)`,
      );
    }
    this.usable(known);
    await this.actOnce(known, signed);
    await backendCall(id, "other", () => this.backend.stop(id));
    known = (await this.registry.refresh(id)) ?? known;
    this.log.info({ sessionId: id }, "session stopped");
    this.metrics.stops.inc();
    return this.view(known, undefined);
  }

  private async resumeOnce(id: string): Promise<Session> {
    const known = await this.registry.refresh(id);
    if (!known) throw new ApiError("SESSION_NOT_FOUND", `no session ${id}`);
    if (known.state.phase === "running" && known.endpoint) {
      return this.view(known, await this.runnerdStatus(known));
    }
    if (known.state.phase !== "stopped" && known.state.phase !== "starting") this.usable(known);
    const started = performance.now();
    const deadline = new Deadline(this.clock, this.config.createTimeoutMs);
    try {
      const made = await backendCall(id, "other", () =>
        this.backend.resume(this.backendSpec(known.record), deadline.signal),
      );
      if (!made.endpoint) throw new ApiError("RUNNERD_NOT_READY", `session ${id} has no address`);
      const status = await this.waitReady(id, known.record.runnerdKey, made.endpoint, deadline);
      const resumed = this.registry.remember(known.record, made);
      this.log.info({ sessionId: id }, "session resumed");
      this.metrics.resumeSeconds.observe((performance.now() - started) / 1000);
      return this.view(resumed, status, true);
    } finally {
      deadline.dispose();
    }
  }

  /**
   * Records a signed request the spawner acts on itself (a stop, a lifetime change) with the
   * session's runnerd, where every replica's requests for the session meet: the same signature
   * resent to another replica is refused there (NONCE_REPLAYED). A session that is not running
   * has no runnerd to ask; what these requests do to it is the same however often (docs/api.md).
   */
  private async actOnce(known: KnownSession, signed: SignedRequest | undefined): Promise<void> {
    if (signed === undefined || known.state.phase !== "running" || !known.endpoint) return;
    await this.client(known.endpoint, known.record.runnerdKey).recordRequest(signed.requestId, CONTROL_TIMEOUT_MS);
  }

  /**
   * The environment that sends a session's traffic through the gateway: its proxy, with the
   * session's own credential (useless from anywhere but the session, and after it ends). Upper and
   * lower case, since tools read one or the other; Node's fetch follows it with NODE_USE_ENV_PROXY.
   * Nothing without a gateway: then nothing leaves the session at all.
   */
  private gatewayEnv(id: string): Record<string, string> {
    const gateway = this.config.gateway;
    const host = this.backend.hostAddress();
    const base = gateway?.proxyUrl ?? (host === undefined ? undefined : `http://${host}:${gateway?.proxyPort}`);
    if (!gateway || base === undefined) return {};
    const url = new URL(base);
    url.username = id;
    url.password = sessionProxyCredential(gateway.secret, id);
    const proxy = url.toString().replace(/\/$/, "");
    const local = "localhost,127.0.0.1,::1";
    return {
      HTTP_PROXY: proxy,
      HTTPS_PROXY: proxy,
      http_proxy: proxy,
      https_proxy: proxy,
      NO_PROXY: local,
      no_proxy: local,
      NODE_USE_ENV_PROXY: "1",
    };
  }

  /** Whether a session can be stopped: its workspace outlives its container or Pod. */
  canStop(record: SessionRecord): boolean {
    return this.backend.capabilities.stopsKeepEveryWorkspace || record.workspace.persistent;
  }

  /** What the backend is asked to run for a session (at create, and again at resume). */
  private backendSpec(record: SessionRecord): BackendSessionSpec {
    return {
      id: record.id,
      image: record.image,
      meta: metaOf(record),
      runnerdEnv: runnerdEnvironment(
        runnerdTokenSha256(this.config.runnerdSecret, record.runnerdKey),
        record.resources.memoryMb,
        this.config.runnerdEnv,
      ),
      resources: record.resources,
      workspace: record.workspace,
    };
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
  /** The token this replica derives for a runnerd, from its key (the session id, or the pool member's). */
  token(runnerdKey: string): string {
    return runnerdToken(this.config.runnerdSecret, runnerdKey);
  }

  /** runnerd's status of a running session; undefined when it cannot be had (the backend is asked again then). */
  async runnerdStatus(known: KnownSession): Promise<RunnerdStatus | undefined> {
    if (known.state.phase !== "running" || !known.endpoint) return undefined;
    try {
      // Ends at once should the session be lost meanwhile (a dead container's address never answers).
      const lost = this.registry.lossSignal(known.record.id);
      const now = this.registry.cached(known.record.id);
      if (now && (now.state.phase !== "running" || now.endpoint?.host !== known.endpoint.host)) return undefined;
      return await this.client(known.endpoint, known.record.runnerdKey).status(CONTROL_TIMEOUT_MS, lost);
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

  private async createOnce({ record, env }: ResolvedSpec): Promise<CreateResult> {
    const deadline = new Deadline(this.clock, this.config.createTimeoutMs);
    try {
      // One listing answers both: is the session there already, and is there room for it.
      const sessions = await backendCall(record.id, "create", () => this.backend.list());
      const existing = sessions.find((s) => s.id === record.id);
      if (existing) return { session: await this.adoptExisting(existing, record.specDigest, deadline), created: false };
      this.checkCapacity(record.id, record.org, sessions);
      const warm = await this.claimWarm(record, env, deadline);
      if (warm) return warm;
      let made: BackendSession;
      try {
        made = await this.backend.create(this.backendSpec(record), deadline.signal);
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
        const status = await this.waitReady(record.id, record.runnerdKey, made.endpoint, deadline);
        const sessionEnv = { ...this.gatewayEnv(record.id), ...env };
        if (Object.keys(sessionEnv).length > 0) {
          const client = this.client(made.endpoint, record.runnerdKey);
          const result = await client.patchEnv({ set: sessionEnv }, CONTROL_TIMEOUT_MS);
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

  /**
   * A create served from the profile's warm pool, when the request is what the pool keeps (its
   * default image and resources): a running member becomes the session, then gets its
   * env. Undefined when no member could be claimed (the caller creates cold).
   */
  private async claimWarm(
    record: SessionRecord,
    env: Record<string, string>,
    deadline: Deadline,
  ): Promise<CreateResult | undefined> {
    const profile = this.config.profiles.get(record.profile);
    if (!this.pool || !profile || !this.pool.pooled(record.profile)) return undefined;
    const defaults = this.config.resources.defaults;
    const { cpus, memoryMb, pids } = record.resources;
    if (cpus !== defaults.cpus || memoryMb !== defaults.memoryMb || pids !== defaults.pids) return undefined;
    for (const member of this.pool.candidates(record.profile, record.image)) {
      const claimed: SessionRecord = { ...record, runnerdKey: member.memberId };
      let made: BackendSession;
      try {
        made = await this.backend.claim(member, metaOf(claimed));
      } catch (error) {
        if (error instanceof BackendConflictError) continue; // another replica got it first
        throw apiErrorOf(error, record.id, "create");
      }
      this.pool.claimed(member);
      try {
        if (!made.endpoint) throw new ApiError("RUNNERD_NOT_READY", `session ${record.id} has no address`);
        const endpoint = made.endpoint;
        const client = this.client(endpoint, member.memberId);
        // The lease came with the claim (the session's annotations); runnerd gets the env, and its
        // answer (even to an empty patch) says it is there to take calls.
        const handOver = () => client.patchEnv({ set: { ...this.gatewayEnv(record.id), ...env } }, CONTROL_TIMEOUT_MS);
        const envResult = await handOver().catch(async (error: unknown) => {
          // A member another replica has only just started may still be booting its runnerd.
          if (!(error instanceof ApiError && error.code === "RUNNERD_UNREACHABLE")) throw error;
          await this.waitReady(record.id, member.memberId, endpoint, deadline);
          return handOver();
        });
        if (envResult.denied.length > 0) {
          throw new ApiError("RUNNERD_NOT_READY", "runnerd did not take the session environment");
        }
        const status = { lastActivityAt: this.clock.now() };
        const known = this.registry.remember(claimed, made);
        this.log.info(
          { sessionId: record.id, memberId: member.memberId, org: record.org },
          "session created from the warm pool",
        );
        return { session: this.view(known, status, true), created: true };
      } catch (error) {
        await this.backend.destroy(record.id).catch((cleanup: unknown) => {
          this.log.error({ sessionId: record.id, err: cleanup }, "could not remove a failed warm session");
        });
        this.registry.forget(record.id);
        throw apiErrorOf(error, record.id, "create");
      }
    }
    return undefined;
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
      await sleep(this.clock, 50);
      current = await backendCall(found.id, "create", () => this.backend.find(found.id));
      if (!current) throw new ApiError("SESSION_CONFLICT", `session ${found.id} was removed while being created`);
    }
    const known = this.registry.remember(record, current);
    const endpoint = this.usable(known);
    const status = await this.waitReady(found.id, record.runnerdKey, endpoint, deadline);
    return this.view(known, status, true);
  }

  /**
   * Waits for runnerd to answer within the create's deadline. While it does
   * not, the backend is asked whether the session still runs: one that died
   * or went away fails the create now, not at the deadline.
   */
  private async waitReady(
    id: string,
    runnerdKey: string,
    endpoint: Endpoint,
    deadline: Deadline,
  ): Promise<RunnerdStatus> {
    const client = this.client(endpoint, runnerdKey);
    let last: unknown;
    let checkedAt = this.clock.now();
    while (!deadline.expired()) {
      try {
        return await client.status(Math.max(100, Math.min(1000, deadline.remainingMs())));
      } catch (error) {
        // Something answers, and not as runnerd: waiting will not change that.
        if (error instanceof ApiError && error.code === "RUNNERD_BAD_REPLY") throw error;
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
      await sleep(this.clock, 15);
    }
    throw new ApiError("RUNNERD_NOT_READY", `runnerd of session ${id} did not answer within ${deadline.ms} ms`, {
      cause: last,
    });
  }

  private checkCapacity(id: string, org: string, sessions: BackendSession[]): void {
    // Only sessions that hold resources count; the session being created does not count against
    // itself (another replica may have just made it).
    const active = sessions.filter((s) => (s.state.phase === "running" || s.state.phase === "starting") && s.id !== id);
    // Creates of this replica not yet visible in the backend count too.
    const inFlight = this.creating.keys().filter((other) => other !== id && !active.some((s) => s.id === other));
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
    if (state.phase === "stopped") {
      throw new ApiError("SESSION_STOPPED", `session ${id} is stopped: POST /v1/sessions/${id}/resume first`);
    }
    if (state.phase === "stopping") throw notReady(id, "is stopping");
    if (state.phase === "starting") throw notReady(id);
    if (!known.endpoint) {
      throw new ApiError("RUNNERD_UNREACHABLE", `session ${id} runs but has no address its runnerd can be reached at`);
    }
    return known.endpoint;
  }

  private client(endpoint: Endpoint, runnerdKey: string): RunnerdClient {
    return new RunnerdClient(endpoint, this.token(runnerdKey));
  }

  /** `answered`: runnerd has just answered this replica's create or resume, so that is over. */
  private stateOf(known: KnownSession, answered = false): SessionState {
    const id = known.record.id;
    const { phase } = known.state;
    if (!answered && phase !== "failed") {
      if (this.creating.has(id)) return "starting";
      if (this.resuming.has(id)) return "resuming";
    }
    return phase === "running" ? "ready" : phase;
  }

  private view(
    known: KnownSession,
    status: Pick<RunnerdStatus, "lastActivityAt"> | undefined,
    answered = false,
  ): Session {
    const { record, state } = known;
    return {
      id: record.id,
      org: record.org,
      owner: record.owner,
      profile: record.profile,
      image: record.image,
      state: this.stateOf(known, answered),
      reason: state.phase === "failed" ? { ...state.reason, at: state.reason.at ?? known.failedSeenAt ?? null } : null,
      stoppable: this.canStop(record),
      stoppedAt: state.phase === "stopped" ? state.at : null,
      createdAt: record.createdAt,
      // The lease as the spawner wrote it into the platform; runnerd's word is never asked.
      expiresAt: record.expiresAt,
      idleTimeoutMs: record.idleTimeoutMs,
      lastActivityAt: status ? this.activityOf(record, status) : null,
      labels: record.labels,
      resources: record.resources,
      backend: this.backend.kind,
      network: record.network,
    };
  }

  /**
   * When the session was last busy, as its runnerd reports it: session-controlled, so held between
   * its creation and now (a session claiming activity in the future is only as busy as it is now).
   */
  activityOf(record: SessionRecord, status: Pick<RunnerdStatus, "lastActivityAt">): number {
    return Math.min(this.clock.now(), Math.max(record.createdAt, status.lastActivityAt));
  }
}

function notReady(id: string, what = "is still starting"): ApiError {
  return new ApiError("SESSION_NOT_READY", `session ${id} ${what}`, { headers: { "Retry-After": "1" } });
}
