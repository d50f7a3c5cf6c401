/**
 * At most one call in flight per key: a second call for a key while one runs gets the same
 * promise instead of starting another (creates of one id, stops and resumes of one session).
 * The key is free again once the call settles, whether it succeeded or not.
 */
export class SingleFlight<K, V> {
  private readonly flights = new Map<K, Promise<V>>();

  /** The call in flight for `key`, or `fn`'s, started now. */
  run(key: K, fn: () => Promise<V>): Promise<V> {
    const inFlight = this.flights.get(key);
    if (inFlight) return inFlight;
    const flight = fn().finally(() => {
      if (this.flights.get(key) === flight) this.flights.delete(key);
    });
    this.flights.set(key, flight);
    return flight;
  }

  /** The call in flight for `key`, if any. */
  get(key: K): Promise<V> | undefined {
    return this.flights.get(key);
  }

  has(key: K): boolean {
    return this.flights.has(key);
  }

  keys(): K[] {
    return [...this.flights.keys()];
  }
}
