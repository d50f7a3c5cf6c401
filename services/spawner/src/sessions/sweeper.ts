import type { Clock, Logger } from "@sbx/edge";
import pLimit from "p-limit";
import type { SessionBackend } from "../backends/backend.js";
import type { Config } from "../config.js";
import type { Metrics } from "../metrics.js";
import type { KnownSession, SessionRegistry } from "./session-registry.js";
import type { SessionService } from "./session-service.js";

export type ReapReason = "ttl" | "idle" | "lifetime" | "failed" | "abandoned";
/** What the sweeper did: deleted the session for a reason, or stopped it for being idle. */
export type SweepAction = { id: string; reason: ReapReason } | { id: string; reason: "idle"; stopped: true };

/** A session still starting this long after its create deadline was left behind by a replica that died mid-create. */
const ABANDONED_AFTER_DEADLINE_MS = 30_000;

/** Sessions looked at in parallel in one sweep. */
const SWEEP_CONCURRENCY = 16;

/**
 * Ends sessions past their TTL or absolute lifetime (stopped ones too), stops
 * or ends idle ones (no API activity and no live exec for their idle timeout,
 * as their profile says), ends failed ones once their
 * reason has been readable for the configured retention, and ones left
 * starting by a replica that died mid-create. Several
 * replicas may sweep at once: deletes are idempotent.
 */
export class Sweeper {
  constructor(
    private readonly config: Config,
    private readonly backend: SessionBackend,
    private readonly registry: SessionRegistry,
    private readonly sessions: SessionService,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  async sweep(): Promise<SweepAction[]> {
    await this.registry.adopt();
    const now = this.clock.now();
    const reaped: SweepAction[] = [];
    const limit = pLimit(SWEEP_CONCURRENCY);
    await Promise.all(
      this.registry.values().map((known) =>
        limit(async () => {
          const id = known.record.id;
          if (this.sessions.isCreating(id)) return;
          const reason = await this.reapReason(known, now);
          if (!reason) return;
          if (reason === "idle" && this.stopsWhenIdle(known)) {
            try {
              await this.sessions.stop(id);
              reaped.push({ id, reason, stopped: true });
              this.log.info({ sessionId: id, reason }, "session stopped by the sweeper");
            } catch (error) {
              this.log.warn({ sessionId: id, err: error }, "could not stop an idle session");
            }
            return;
          }
          try {
            await this.backend.destroy(id);
            this.registry.forget(id);
            reaped.push({ id, reason });
            this.metrics.reaped.inc({ reason });
            this.log.info({ sessionId: id, reason }, "session reaped");
          } catch (error) {
            this.log.warn({ sessionId: id, err: error }, "could not reap session");
          }
        }),
      ),
    );
    this.metrics.sweeps.inc();
    return reaped;
  }

  /** Idle sessions are stopped rather than deleted where their profile says so and they can be. */
  private stopsWhenIdle(known: KnownSession): boolean {
    const profile = this.config.profiles.get(known.record.profile);
    return (
      (profile?.idle ?? "stop") === "stop" && known.state.phase === "running" && this.sessions.canStop(known.record)
    );
  }

  private async reapReason(known: KnownSession, now: number): Promise<ReapReason | undefined> {
    const { record, state } = known;
    if (state.phase === "failed") {
      const failedAt = state.reason.at ?? known.failedSeenAt ?? now;
      return now - failedAt >= this.config.failedRetentionMs ? "failed" : undefined;
    }
    if (state.phase === "terminating" || state.phase === "stopping") return undefined;
    if (state.phase === "stopped") {
      // Asleep: not idle, but its lifetime and TTL still end it.
      if (now >= record.createdAt + this.config.lifetime.maxLifetimeMs) return "lifetime";
      return now >= record.expiresAt ? "ttl" : undefined;
    }
    if (now >= record.createdAt + this.config.lifetime.maxLifetimeMs) return "lifetime";
    if (state.phase === "starting") {
      const abandonedAt = record.createdAt + this.config.createTimeoutMs + ABANDONED_AFTER_DEADLINE_MS;
      return now >= abandonedAt ? "abandoned" : undefined;
    }
    // The lease is the spawner's own record; runnerd only reports activity (which a session may
    // legitimately keep up: a busy session is not idle, but its TTL ends it all the same).
    if (now >= record.expiresAt) return "ttl";
    const status = await this.sessions.runnerdStatus(known);
    if (!status) return undefined; // idleness needs runnerd's activity clock
    const idleFor = now - this.sessions.activityOf(record, status);
    if (status.liveExecs === 0 && idleFor >= record.idleTimeoutMs) return "idle";
    return undefined;
  }
}
