import { Writable } from "node:stream";
import { createLogger, systemClock } from "@sbx/edge";
import { MemoryBackend } from "@sbx/spawner/testing";
import { describe, expect, it } from "vitest";
import type { HeldLock, PoolMember } from "../backends/backend.js";
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
  override async tryLock(name: string, options: { ttlMs: number }): Promise<HeldLock | undefined> {
    this.lockStarted();
    await new Promise((resolve) => setTimeout(resolve, 100));
    return super.tryLock(name, options);
  }
}

/** A platform that cannot be reached for locks. */
class UnreachableLocks extends MemoryBackend {
  override async tryLock(): Promise<HeldLock | undefined> {
    throw new Error("connect ECONNREFUSED");
  }
}

/** A full pool (one member, listed always) on a platform whose locks take a while to give back. */
class SlowRelease extends MemoryBackend {
  unlockStarted: () => void = () => {};
  released = false;
  override async listPool(): Promise<PoolMember[]> {
    const member = { memberId: "p-full", profile: "default", image: "sbx-runtime:latest", imageId: undefined };
    return [{ ...member, state: { phase: "running" }, endpoint: { host: "127.0.0.1", port: 1 }, createdAt: 0 }];
  }
  override async unlock(lock: HeldLock): Promise<void> {
    this.unlockStarted();
    await new Promise((resolve) => setTimeout(resolve, 200));
    await super.unlock(lock);
    this.released = true;
  }
}

const poolConfig = () =>
  loadConfig({
    SPAWNER_HMAC_KEYS: "test:0123456789abcdef-test-secret",
    SPAWNER_RUNNERD_SECRET: "runnerd-secret-for-in-process-tests-0123456789",
    SPAWNER_POOL_SIZE: "1",
  });

/** A pool of one member for the default profile, on `backend`. */
const poolOn = (backend: MemoryBackend) =>
  new WarmPool(poolConfig(), backend, systemClock, quiet, new Metrics(() => ({})));

describe("warm pool locks", () => {
  it("a lock the platform cannot give is tried again next round, never an unhandled rejection", async () => {
    const backend = new UnreachableLocks();
    const pool = poolOn(backend);
    await expect(pool.fill()).resolves.toBeUndefined();
    expect(await backend.listPool()).toEqual([]);
    await pool.close();
    await backend.close();
  });

  it("waits at close for a lock still being given back (the process ends right after)", async () => {
    const backend = new SlowRelease();
    const pool = poolOn(backend);
    const releasing = new Promise<void>((resolve) => {
      backend.unlockStarted = resolve;
    });
    const filling = pool.fill();
    await releasing;
    await pool.close();
    expect(backend.released).toBe(true);
    await filling;
    await backend.close();
  });

  it("gives back a lock that was still being taken when the pool closed, so a restart fills at once", async () => {
    const backend = new SlowLocks();
    const pool = poolOn(backend);
    const taking = new Promise<void>((resolve) => {
      backend.lockStarted = resolve;
    });
    const filling = pool.fill();
    await taking;
    await pool.close();
    await filling;
    // Another replica (or this one restarted) takes the lock at once, instead of after its expiry.
    expect(await backend.tryLock("pool-default", { ttlMs: 60_000 })).toBeDefined();
    // And the closed pool started nothing.
    expect(await backend.listPool()).toEqual([]);
    await backend.close();
  });
});
