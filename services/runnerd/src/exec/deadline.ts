import type { Clock, Timer } from "@sbx/edge";

/**
 * The sliding orphan deadline of one exec. While at least one consumer is
 * attached the exec runs unbounded; when the last one leaves, a window of
 * `windowMs` starts, and any attach disarms it again. Only when the window
 * passes with nobody attached does `onExpire` run.
 */
export class OrphanDeadline {
  private attached = 0;
  private timer: Timer | undefined;
  private stopped = false;

  constructor(
    private readonly windowMs: number,
    private readonly onExpire: () => void,
    private readonly clock: Clock,
  ) {
    this.arm();
  }

  get consumers(): number {
    return this.attached;
  }

  get armed(): boolean {
    return this.timer !== undefined;
  }

  /** Registers a consumer; the returned function detaches it (calling it twice is harmless). */
  attach(): () => void {
    this.attached++;
    this.disarm();
    let detached = false;
    return () => {
      if (detached) return;
      detached = true;
      this.attached--;
      if (this.attached === 0) this.arm();
    };
  }

  /** The exec ended: no deadline applies any more. */
  stop(): void {
    this.stopped = true;
    this.disarm();
  }

  private arm(): void {
    if (this.stopped || this.timer !== undefined) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      if (!this.stopped && this.attached === 0) this.onExpire();
    }, this.windowMs);
    this.timer.unref?.();
  }

  private disarm(): void {
    if (this.timer === undefined) return;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** A hard limit: `onExpire` runs after `ms` unless stopped first. */
export class HardDeadline {
  private timer: Timer | undefined;

  constructor(
    ms: number,
    onExpire: () => void,
    private readonly clock: Clock,
  ) {
    this.timer = clock.setTimeout(() => {
      this.timer = undefined;
      onExpire();
    }, ms);
    this.timer.unref?.();
  }

  stop(): void {
    if (this.timer === undefined) return;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }
}
