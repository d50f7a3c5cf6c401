import type { Clock, Timer } from "@sbx/edge";

/**
 * One create's deadline, made and checked on one clock: the service asks
 * `expired()`/`remainingMs()`, a backend is handed `signal`, which the same
 * clock's timer aborts. Call `dispose()` when the create is over.
 */
export class Deadline {
  readonly at: number;
  private readonly controller = new AbortController();
  private readonly timer: Timer;

  constructor(
    private readonly clock: Clock,
    readonly ms: number,
  ) {
    this.at = clock.now() + ms;
    this.timer = clock.setTimeout(() => this.controller.abort(new Error(`deadline of ${ms} ms passed`)), ms);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  remainingMs(): number {
    return Math.max(0, this.at - this.clock.now());
  }

  expired(): boolean {
    return this.signal.aborted || this.clock.now() >= this.at;
  }

  dispose(): void {
    this.clock.clearTimeout(this.timer);
  }
}
