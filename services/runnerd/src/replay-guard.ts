import { type Clock, ExpiringSet } from "@sbx/edge";
import { ApiError } from "@sbx/protocol";

/**
 * The signed requests runnerd has acted on, each kept for as long as a replay of its signature
 * could still pass the spawner's checks. A session has one runnerd, so this is the one place
 * every replica's requests for it meet: a request resent to another replica acts once.
 */
export class ReplayGuard {
  private readonly seen: ExpiringSet;

  constructor(
    ttlMs: number,
    maxEntries: number,
    private readonly clock: Clock,
    /** Ids kept by an earlier runnerd of this session, with when each lapses (session-written: clamped). */
    kept: ReadonlyArray<readonly [string, number]> = [],
  ) {
    this.seen = new ExpiringSet(ttlMs, maxEntries);
    this.seen.restore(kept, clock.now());
  }

  /** Records `id`; throws NONCE_REPLAYED when it was acted on already. */
  accept(id: string): void {
    const added = this.seen.add(id, this.clock.now());
    if (added === "seen") {
      throw new ApiError("NONCE_REPLAYED", "this signed request was already acted on; sign every request anew");
    }
    if (added === "full") {
      throw new ApiError("TOO_MANY_REQUESTS", "too many signed requests within the replay window; try again shortly", {
        headers: { "Retry-After": "5" },
      });
    }
  }

  /** The live ids with when each lapses, for the next runnerd of this session. */
  live(): Array<[string, number]> {
    return this.seen.live(this.clock.now());
  }
}
