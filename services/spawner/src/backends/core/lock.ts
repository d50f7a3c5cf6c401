import type { HeldLock } from "../backend.js";

/** A lock as the platform holds it: when it lapses, and the version a break must match. */
export interface LockRecord {
  expiresAt: number;
  version: string;
}

/**
 * Where a platform keeps named locks: one object per name that only one holder can create (a
 * container name on Docker, a Lease on Kubernetes). The algorithm is `takeLock`'s, the same for all.
 */
export interface LockStore {
  /** Creates the lock's object; undefined when an object of that name exists. */
  create(name: string, ttlMs: number): Promise<HeldLock | undefined>;
  /** The existing object of that name, or undefined when there is none. */
  read(name: string): Promise<LockRecord | undefined>;
  /** Removes the object only as it was read (`version`): one taken anew since stays. */
  break(name: string, version: string): Promise<void>;
}

/**
 * Take, or find it held; a lock whose holder let it lapse (died) is broken as read and taken once
 * more. Undefined when a live holder has it, or another taker got there first.
 */
export async function takeLock(
  store: LockStore,
  name: string,
  ttlMs: number,
  now: () => number,
): Promise<HeldLock | undefined> {
  for (let attempt = 0; attempt < 2; attempt++) {
    const taken = await store.create(name, ttlMs);
    if (taken) return taken;
    const held = await store.read(name);
    if (held && held.expiresAt > now()) return undefined;
    if (held) await store.break(name, held.version);
  }
  return undefined;
}
