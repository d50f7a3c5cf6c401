/**
 * Nonces seen within the clock-skew window. A signed request is valid for
 * ±skew around its timestamp, so a nonce only has to be remembered that long
 * to make every replay fail. Per replica: a replay sent to another replica
 * within the window is not caught (documented).
 */
export class NonceCache {
  private readonly seen = new Map<string, number>();
  private lastSweep = 0;

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
  ) {}

  /** Records the nonce; false when it was already there (a replay) or the cache is full. */
  remember(nonce: string, now: number): boolean {
    if (now - this.lastSweep > this.ttlMs / 4) this.sweep(now);
    const expiry = this.seen.get(nonce);
    if (expiry !== undefined && expiry > now) return false;
    // Full of live nonces: refusing is safe, forgetting would reopen replays.
    if (this.seen.size >= this.maxEntries) return false;
    this.seen.set(nonce, now + this.ttlMs);
    return true;
  }

  get size(): number {
    return this.seen.size;
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [nonce, expiry] of this.seen) if (expiry <= now) this.seen.delete(nonce);
  }
}
