import { Writable } from "node:stream";
import { createLogger, systemClock } from "@sbx/edge";
import { describe, expect, it } from "vitest";
import { MemoryBackend } from "../backends/memory/memory-backend.js";
import { loadConfig } from "../config.js";
import { Metrics } from "../metrics.js";
import { WarmPool } from "./warm-pool.js";

const quiet = createLogger(
  "spawner",
  "error",
  new Writable({
    write(_chunk, _encoding, done) {
      done();
    },
  }),
);

/** A platform whose locks take a while to take: a shutdown can land while one is being taken. */
class SlowLocks extends MemoryBackend {
  lockStarted: () => void = () => {};
  override async tryLock(name: string, options: { ttlMs: number }): Promise<boolean> {
    this.lockStarted();
    await new Promise((resolve) => setTimeout(resolve, 100));
    return super.tryLock(name, options);
  }
}

describe("warm pool locks", () => {
  it("gives back a lock that was still being taken when the pool closed, so a restart fills at once", async () => {
    const config = loadConfig({
      SPAWNER_HMAC_KEYS: "test:0123456789abcdef-test-secret",
      SPAWNER_RUNNERD_SECRET: "runnerd-secret-for-in-process-tests-0123456789",
      SPAWNER_POOL_SIZE: "1",
    });
    const backend = new SlowLocks();
    const pool = new WarmPool(config, backend, systemClock, quiet, new Metrics(() => ({})));
    const taking = new Promise<void>((resolve) => {
      backend.lockStarted = resolve;
    });
    const filling = pool.fill();
    await taking;
    await pool.close();
    await filling;
    // Another replica (or this one restarted) takes the lock at once, instead of after its expiry.
    expect(await backend.tryLock("pool-default", { ttlMs: 60_000 })).toBe(true);
    // And the closed pool started nothing.
    expect(await backend.listPool()).toEqual([]);
    await backend.close();
  });
});
