export type Timer = ReturnType<typeof setTimeout>;

/**
 * Time and timers as one injectable dependency, so logic that waits can be driven by a
 * hand-moved clock in tests and by the real one in production.
 */
export interface Clock {
  now(): number;
  /** `unref`: the timer does not keep the process alive on its own. */
  setTimeout(fn: () => void, ms: number, options?: { unref?: boolean }): Timer;
  clearTimeout(timer: Timer): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms, options) => {
    const timer = setTimeout(fn, ms);
    if (options?.unref) timer.unref();
    return timer;
  },
  clearTimeout: (timer) => clearTimeout(timer),
};

/** Resolves after `ms` on `clock`; rejects with the signal's reason if it fires first. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clock.clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = clock.setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
