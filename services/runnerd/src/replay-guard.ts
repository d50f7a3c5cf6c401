import type { Clock } from "@sbx/edge";
import { ApiError } from "@sbx/protocol";

/**
 * The signed requests runnerd has acted on, each kept for as long as a replay of its signature
 * could still pass the spawner's checks. A session has one runnerd, so this is the one place
 * every replica's requests for it meet: a request resent to another replica acts once.
 * Bounded: past `maxEntries` live ids it refuses new ones rather than forget live ones.
 */
export class ReplayGuard {
  private readonly seen = new Map<string, number>();
  private lastSweep = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly clock: Clock,
    /** Ids kept by an earlier runnerd of this session, with when each lapses. */
    kept: ReadonlyArray<readonly [string, number]> = [],
  ) {
    const now = clock.now();
    // Session-controlled on the way back in: a lapse further off than a whole window is not believed.
    for (const [id, until] of kept) if (until > now) this.seen.set(id, Math.min(until, now + ttlMs));
  }

  /** Records `id`; throws NONCE_REPLAYED when it was acted on already. */
  accept(id: string): void {
    const now = this.clock.now();
    if (now - this.lastSweep > this.ttlMs / 4) this.sweep(now);
    const until = this.seen.get(id);
    if (until !== undefined && until > now) {
      throw new ApiError("NONCE_REPLAYED", "this signed request was already acted on; sign every request anew");
    }
    if (this.seen.size >= this.maxEntries) {
      throw new ApiError("TOO_MANY_REQUESTS", "too many signed requests within the replay window; try again shortly", {
        headers: { "Retry-After": "5" },
      });
    }
    this.seen.set(id, now + this.ttlMs);
  }

  /** The live ids with when each lapses, for the next runnerd of this session. */
  live(): Array<[string, number]> {
    this.sweep(this.clock.now());
    return [...this.seen];
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [id, until] of this.seen) if (until <= now) this.seen.delete(id);
  }
}
