/**
 * A channel of capacity zero between one producer and one consumer: `put` resolves only once the
 * consumer took the value, so a producer reading from the network reads no faster than its
 * consumer iterates (nothing piles up in between).
 */
export class Handoff<T> {
  private offered: { value: T; taken: () => void; refused: (error: unknown) => void } | undefined;
  private waiting: ((next: { value: T } | { end: true } | { error: unknown }) => void) | undefined;
  private closed: { end: true } | { error: unknown } | undefined;

  /** Hands `value` over; resolves when it was taken, rejects when the channel was closed first. */
  put(value: T): Promise<void> {
    return new Promise<void>((taken, refused) => {
      if (this.closed) {
        refused(new Error("the channel is closed"));
        return;
      }
      const waiting = this.waiting;
      if (waiting) {
        this.waiting = undefined;
        waiting({ value });
        taken();
        return;
      }
      this.offered = { value, taken, refused };
    });
  }

  /** The next value; undefined once the producer ended; throws what the producer failed with. */
  take(): Promise<T | undefined> {
    const offered = this.offered;
    if (offered) {
      this.offered = undefined;
      offered.taken();
      return Promise.resolve(offered.value);
    }
    const closed = this.closed;
    if (closed) return "end" in closed ? Promise.resolve(undefined) : Promise.reject(closed.error);
    return new Promise<T | undefined>((resolve, reject) => {
      this.waiting = (next) => {
        if ("value" in next) resolve(next.value);
        else if ("end" in next) resolve(undefined);
        else reject(next.error);
      };
    });
  }

  /** Done (the producer ended, or the consumer left): a waiting or later take gets undefined, a put is refused. */
  end(): void {
    this.close({ end: true });
  }

  /** The producer failed: a waiting or later take throws `error`. */
  fail(error: unknown): void {
    this.close({ error });
  }

  private close(how: { end: true } | { error: unknown }): void {
    this.closed = how;
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.(how);
    const offered = this.offered;
    this.offered = undefined;
    offered?.refused(new Error("the channel is closed"));
  }
}
