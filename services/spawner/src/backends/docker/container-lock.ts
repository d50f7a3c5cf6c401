import type { HeldLock } from "../backend.js";
import type { LockRecord, LockStore } from "../core/lock.js";
import { type DockerEngine, dockerUnavailable, statusOf } from "./docker-engine.js";

/** On a lock container: when the lock lapses if its holder never releases it. */
const LOCK_EXPIRES = "sbx.dev/lock-expires";

/**
 * Locks as never-started containers: a container name is the one object the engine refuses to
 * give twice. The container's id tells one taking from a later one of the same name. Docker
 * cannot change a container's labels, so a lock cannot be renewed in place: it lives its whole
 * lifetime unless released.
 */
export class ContainerLockStore implements LockStore {
  constructor(
    private readonly engine: DockerEngine,
    /** An image the engine has (the runtime image): a container needs one, though it never runs. */
    private readonly image: string,
  ) {}

  async create(name: string, ttlMs: number): Promise<HeldLock | undefined> {
    try {
      const made = await this.engine.docker.createContainer({
        name: this.engine.lockName(name),
        Image: this.image,
        Labels: { ...this.engine.ownership(), [LOCK_EXPIRES]: String(Date.now() + ttlMs) },
      });
      return { name, token: made.id };
    } catch (error) {
      if (statusOf(error) === 409) return undefined;
      throw dockerUnavailable("could not take a lock", error);
    }
  }

  async read(name: string): Promise<LockRecord | undefined> {
    try {
      const held = await this.engine.docker.getContainer(this.engine.lockName(name)).inspect();
      return { expiresAt: Number(held.Config.Labels?.[LOCK_EXPIRES] ?? 0), version: held.Id };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw dockerUnavailable("could not read a lock", error);
    }
  }

  async break(_name: string, version: string): Promise<void> {
    // By its id: a lock another replica has just taken anew (a new container) stays.
    await this.removeById(version, "could not break a lock");
  }

  /** Gives a lock back by its id: once it expired and another replica took the name, that lock is not this one. */
  async release(lock: HeldLock): Promise<void> {
    await this.removeById(lock.token, "could not release a lock");
  }

  private async removeById(id: string, what: string): Promise<void> {
    try {
      await this.engine.docker.getContainer(id).remove({ force: true });
    } catch (error) {
      if (statusOf(error) !== 404 && statusOf(error) !== 409) throw dockerUnavailable(what, error);
    }
  }
}
