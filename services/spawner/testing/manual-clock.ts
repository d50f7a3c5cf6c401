import type { Clock, Timer } from "@sbx/edge";

interface Pending {
  due: number;
  fn: () => void;
}

/**
 * A clock that moves only when told (`advance`), firing every timer that falls due on the way, in
 * order: the spawner's lifetimes, idleness, retentions and lock expiries, tested without sleeping.
 * Starts at the real time, so requests it signs are within any server's skew.
 */
export class ManualClock implements Clock {
  private current = Date.now();
  private readonly pending = new Map<Timer, Pending>();

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    // A cleared real timer stands for this one: the Timer type callers hold, and a unique key.
    const handle = setTimeout(() => undefined, 0);
    clearTimeout(handle);
    this.pending.set(handle, { due: this.current + Math.max(0, ms), fn });
    return handle;
  }

  clearTimeout(timer: Timer): void {
    this.pending.delete(timer);
  }

  /** Moves time on by `ms`, firing the timers due meanwhile (each at its own time, earliest first). */
  async advance(ms: number): Promise<void> {
    const until = this.current + ms;
    for (;;) {
      const next = [...this.pending].filter(([, p]) => p.due <= until).sort(([, a], [, b]) => a.due - b.due)[0];
      if (!next) break;
      const [handle, timer] = next;
      this.pending.delete(handle);
      this.current = Math.max(this.current, timer.due);
      timer.fn();
      // What the timer started (a promise chain) gets to run before the next one fires.
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.current = until;
  }
}
