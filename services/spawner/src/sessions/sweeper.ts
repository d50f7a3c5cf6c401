import type { Clock, Logger } from "@sbx/edge";
import pLimit from "p-limit";
import type { SessionBackend } from "../backends/backend.js";
import type { Config } from "../config.js";
import type { Metrics } from "../metrics.js";
import type { KnownSession, SessionRegistry } from "./session-registry.js";
import type { SessionService } from "./session-service.js";

export type ReapReason = "ttl" | "idle" | "lifetime" | "failed" | "abandoned";

/** A session still starting this long after its create deadline was left behind by a replica that died mid-create. */
const ABANDONED_AFTER_DEADLINE_MS = 30_000;

/** Sessions looked at in parallel in one sweep. */
const SWEEP_CONCURRENCY = 16;

/**
 * Ends sessions past their TTL or absolute lifetime, idle ones (no API
 * activity and no live exec for their idle timeout), failed ones once their
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

  async sweep(): Promise<Array<{ id: string; reason: ReapReason }>> {
    await this.registry.adopt();
    const now = this.clock.now();
    const reaped: Array<{ id: string; reason: ReapReason }> = [];
    const limit = pLimit(SWEEP_CONCURRENCY);
    await Promise.all(
      this.registry.values().map((known) =>
        limit(async () => {
          const id = known.record.id;
          if (this.sessions.isCreating(id)) return;
          const reason = await this.reapReason(known, now);
          if (!reason) return;
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

  private async reapReason(known: KnownSession, now: number): Promise<ReapReason | undefined> {
    const { record, state } = known;
    if (state.phase === "failed") {
      const failedAt = state.reason.at ?? known.failedSeenAt ?? now;
      return now - failedAt >= this.config.failedRetentionMs ? "failed" : undefined;
    }
    if (state.phase === "terminating") return undefined;
    if (now >= record.createdAt + this.config.lifetime.maxLifetimeMs) return "lifetime";
    if (state.phase === "starting") {
      const abandonedAt = record.createdAt + this.config.createTimeoutMs + ABANDONED_AFTER_DEADLINE_MS;
      return now >= abandonedAt ? "abandoned" : undefined;
    }
    const status = await this.sessions.runnerdStatus(known);
    const expiresAt = status?.lease?.expiresAt ?? record.expiresAt;
    if (now >= expiresAt) return "ttl";
    if (!status) return undefined; // idleness needs runnerd's activity clock
    const idleTimeoutMs = status.lease?.idleTimeoutMs ?? record.idleTimeoutMs;
    if (status.liveExecs === 0 && now - status.lastActivityAt >= idleTimeoutMs) return "idle";
    return undefined;
  }
}
