/**
 * Keys remembered for a while: each lapses `ttlMs` after it was added. Bounded: once `maxEntries`
 * live keys are held, new ones are refused rather than live ones forgotten (forgetting would let a
 * key that must be refused in again). What the spawner's nonce cache and runnerd's record of
 * signed requests both are.
 */
export class ExpiringSet {
  private readonly until = new Map<string, number>();
  private lastSweep = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
  ) {}

  /** Adds `key` at `now`: "added", or why not ("seen": it is held already; "full"). */
  add(key: string, now: number): "added" | "seen" | "full" {
    if (now - this.lastSweep > this.ttlMs / 4) this.sweep(now);
    const lapses = this.until.get(key);
    if (lapses !== undefined && lapses > now) return "seen";
    // Full, perhaps of lapsed keys the periodic sweep has not reached yet: sweep before refusing.
    if (this.until.size >= this.maxEntries) this.sweep(now);
    if (this.until.size >= this.maxEntries) return "full";
    this.until.set(key, now + this.ttlMs);
    return "added";
  }

  /** Takes back keys kept elsewhere (`[key, when it lapses]`); a lapse further off than `ttlMs` from `now` is cut to it. */
  restore(kept: ReadonlyArray<readonly [string, number]>, now: number): void {
    for (const [key, lapses] of kept) {
      if (lapses > now && this.until.size < this.maxEntries) this.until.set(key, Math.min(lapses, now + this.ttlMs));
    }
  }

  /** The live keys with when each lapses. */
  live(now: number): Array<[string, number]> {
    this.sweep(now);
    return [...this.until];
  }

  get size(): number {
    return this.until.size;
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [key, lapses] of this.until) if (lapses <= now) this.until.delete(key);
  }
}
