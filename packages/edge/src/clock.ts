export type Timer = ReturnType<typeof setTimeout>;

/**
 * Time and timers as one injectable dependency, so deadline logic can be
 * driven by fake timers in tests and by the real ones in production.
 */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(timer: Timer): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (timer) => clearTimeout(timer),
};
