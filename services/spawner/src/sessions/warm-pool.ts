import { type Clock, type Logger, sleep, type Timer } from "@sbx/edge";
import { ANNOTATIONS, LABELS } from "@sbx/protocol";
import { customAlphabet } from "nanoid";
import type { BackendSessionSpec, HeldLock, PoolMember, SessionBackend } from "../backends/backend.js";
import { BackendConflictError } from "../backends/backend-errors.js";
import { runnerdEnvironment } from "../backends/runtime-contract.js";
import type { Config, Profile } from "../config.js";
import type { Metrics } from "../metrics.js";
import { RunnerdClient } from "../runnerd/runnerd-client.js";
import { runnerdToken, runnerdTokenSha256 } from "../runnerd/runnerd-token.js";
import { Deadline } from "./deadline.js";
import { workspaceText } from "./session-record.js";

const memberSuffix = customAlphabet("0123456789abcdefghijklmnopqrstuvwxyz", 10);
/** After this many failed starts in a row, a pool waits before trying again (doubling each time). */
const FAILURES_BEFORE_BACKOFF = 3;
const MAX_BACKOFF_MS = 5 * 60_000;
/** How long after a claim its pool starts refilling. */
const REFILL_DELAY_MS = 500;
/**
 * A pool lock's lifetime where the platform renews locks (every third of it while held): a
 * replica that dies holding one blocks that pool for at most this long.
 */
const RENEWED_LOCK_TTL_MS = 15_000;

/**
 * Warm pools: per profile, members kept running (created like sessions, with
 * no identity yet) so that a create of that profile's default image and
 * resources claims one instead of waiting for a start. Every replica checks
 * its pools every SPAWNER_POOL_INTERVAL_MS and after each claim; only the
 * replica holding a pool's lock starts members, and only what brings the pool
 * back to its size, so replicas never start more than the target between
 * them. Members whose image went stale, that died or that never became ready
 * are removed; failing starts back off instead of piling up.
 */
export class WarmPool {
  /** The members this replica saw last, by profile: what a claim picks from without a listing. */
  private ready = new Map<string, PoolMember[]>();
  private failures = new Map<string, { count: number; until: number }>();
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  /** A lock being taken right now (close waits for it, to give it back). */
  private locking: Promise<HeldLock | undefined> | undefined;
  /** Pool locks this replica holds right now, by name (given back at close). */
  private readonly held = new Map<string, HeldLock>();
  /** Locks being given back right now (close waits for them: the process may end right after). */
  private readonly releasing = new Set<Promise<void>>();

  constructor(
    private readonly config: Config,
    private readonly backend: SessionBackend,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  /** Whether creates of this profile may come from its pool at all. */
  pooled(profile: string): boolean {
    return (this.config.profiles.get(profile)?.pool.size ?? 0) > 0;
  }

  /** Running members of a profile's pool, as last seen, in random order (so replicas rarely pick the same). */
  candidates(profile: string, image: string): PoolMember[] {
    const members = (this.ready.get(profile) ?? []).filter(
      (m) => m.state.phase === "running" && m.endpoint !== undefined && m.image === image,
    );
    for (let i = members.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [members[i], members[j]] = [members[j] as PoolMember, members[i] as PoolMember];
    }
    return members;
  }

  /** A member was claimed (by this replica): it is no longer the pool's, and the pool refills. */
  claimed(member: PoolMember): void {
    const members = this.ready.get(member.profile);
    if (members)
      this.ready.set(
        member.profile,
        members.filter((m) => m.memberId !== member.memberId),
      );
    this.metrics.poolClaims.inc({ profile: member.profile });
    // Shortly, not at once: starting a container is heavy, and the new session's first calls
    // (made right after its create answered) should not wait behind it.
    this.clock.setTimeout(() => void this.fill(), REFILL_DELAY_MS, { unref: true });
  }

  /** Stops filling and gives back the locks held (members being started are left to the next filler). */
  async close(): Promise<void> {
    this.closed = true;
    // A lock being taken right now is given back too, once it is taken.
    await this.locking?.catch(() => undefined);
    const held = [...this.held.keys()];
    this.log.debug({ locks: held, releasing: this.releasing.size }, "giving back the pool locks");
    // Those already being given back are waited for too: the process ends once this resolves.
    await Promise.all([...held.map((lock) => this.release(lock)), ...this.releasing]);
  }

  /** Gives a held lock back, once (close() and the fill that took it may both ask). */
  private release(name: string): Promise<void> {
    const lock = this.held.get(name);
    if (lock === undefined) return Promise.resolve();
    this.held.delete(name);
    const releasing = this.backend.unlock(lock).then(
      () => this.log.debug({ lock: name }, "gave back a pool lock"),
      (error: unknown) => this.log.warn({ lock: name, err: error }, "could not give back a pool lock"),
    );
    this.releasing.add(releasing);
    return releasing.finally(() => this.releasing.delete(releasing));
  }

  /** Extends a held lock; a lock lost meanwhile (this replica stalled past its lifetime) is said so. */
  private renew(lock: HeldLock, ttlMs: number): void {
    void this.backend.renewLock(lock, ttlMs).then(
      (kept) => {
        if (!kept && this.held.get(lock.name) === lock) {
          this.log.warn({ lock: lock.name }, "lost a pool lock while filling (it expired before it was renewed)");
        }
      },
      (error: unknown) => this.log.warn({ lock: lock.name, err: error }, "could not renew a pool lock"),
    );
  }

  /** Brings every pool back to its size. Runs one at a time; a call while it runs asks for one more run. */
  fill(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        let members: PoolMember[];
        try {
          members = await this.backend.listPool();
        } catch (error) {
          this.log.warn({ err: error }, "could not list the warm pools");
          return;
        }
        // Pools configured, and pools no longer configured (or made empty) that still have members.
        const names = new Set([...this.config.profiles.keys(), ...members.map((m) => m.profile)]);
        for (const name of names) {
          const profile = this.config.profiles.get(name);
          const mine = members.filter((m) => m.profile === name);
          this.ready.set(name, mine);
          this.metrics.poolMembers.set({ profile: name }, mine.filter((m) => m.state.phase === "running").length);
          if ((profile?.pool.size ?? 0) > 0 || mine.length > 0) await this.fillProfile(name, profile);
        }
      } while (this.again);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async fillProfile(name: string, profile: Profile | undefined): Promise<void> {
    const image = profile?.images[0] ?? "";
    const size = profile?.pool.size ?? 0;
    const backoff = this.failures.get(name);
    if (backoff && backoff.until > this.clock.now()) return;
    const lock = `pool-${name}`;
    if (this.closed) return;
    // Renewed while held where the platform can; elsewhere it must outlast a whole fill.
    const renewable = this.backend.capabilities.renewableLocks;
    const ttlMs = renewable ? RENEWED_LOCK_TTL_MS : this.config.createTimeoutMs + 30_000;
    // Held from the moment it is taken, in the same step: a close() waiting on it then sees it.
    const locking = this.backend.tryLock(lock, { ttlMs }).then((taken) => {
      if (taken) this.held.set(lock, taken);
      return taken;
    });
    this.locking = locking;
    const taken = await locking
      .catch((error: unknown) => {
        // The platform did not answer: the next round tries again (a fill never rejects).
        this.log.warn({ profile: name, err: error }, "could not take the warm pool's lock");
        return undefined;
      })
      .finally(() => {
        if (this.locking === locking) this.locking = undefined;
      });
    if (!taken) return;
    this.log.debug({ lock }, "took a pool lock");
    // Every third of its lifetime, while held.
    let renewing: Timer | undefined;
    const renewSoon = () => {
      renewing = this.clock.setTimeout(
        () => {
          this.renew(taken, ttlMs);
          renewSoon();
        },
        ttlMs / 3,
        { unref: true },
      );
    };
    if (renewable) renewSoon();
    try {
      // Closed while the lock was being taken: give it back at once (below), fill nothing.
      if (this.closed) return;
      // Listed again under the lock: what another replica did before we took it counts.
      const members = (await this.backend.listPool()).filter((m) => m.profile === name);
      const currentImageId = profile ? await this.backend.currentImageId(image) : undefined;
      const stale = members.filter((m) => this.isStale(m, image, currentImageId));
      for (const m of stale) {
        this.log.info({ profile: name, memberId: m.memberId, state: m.state.phase }, "removing a stale pool member");
        await this.backend.destroy(m.memberId);
      }
      const live = members.filter((m) => !stale.includes(m));
      // A pool made smaller: the newest members go first.
      const surplus = live.sort((a, b) => b.createdAt - a.createdAt).slice(0, Math.max(0, live.length - size));
      for (const m of surplus) await this.backend.destroy(m.memberId);
      // Whatever is still listed counts, removed or not: a member that would not go (or is still
      // going) never makes room for another, so no failure ever grows the pool past its size.
      const left =
        stale.length + surplus.length === 0
          ? members.length
          : (await this.backend.listPool()).filter((m) => m.profile === name).length;
      const need = Math.min(size - left, profile?.pool.maxStarting ?? 0);
      if (!profile || need <= 0) return;
      const started = await Promise.all(Array.from({ length: need }, () => this.startMember(name, profile, image)));
      const failed = started.filter((ok) => !ok).length;
      if (failed === 0) {
        this.failures.delete(name);
      } else {
        const count = (this.failures.get(name)?.count ?? 0) + failed;
        const waitMs =
          count < FAILURES_BEFORE_BACKOFF ? 0 : Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (count - FAILURES_BEFORE_BACKOFF));
        this.failures.set(name, { count, until: this.clock.now() + waitMs });
      }
      this.ready.set(
        name,
        (await this.backend.listPool()).filter((m) => m.profile === name),
      );
    } catch (error) {
      this.log.warn({ profile: name, err: error }, "could not fill the warm pool");
    } finally {
      if (renewing) this.clock.clearTimeout(renewing);
      // Unless close() already gave it back.
      await this.release(lock);
    }
  }

  private isStale(member: PoolMember, image: string, currentImageId: string | undefined): boolean {
    if (member.image !== image) return true; // the profile's image changed (or the profile went)
    if (currentImageId !== undefined && member.imageId !== undefined && member.imageId !== currentImageId) return true;
    const { phase } = member.state;
    if (phase === "failed" || phase === "stopped" || phase === "stopping" || phase === "terminating") return true;
    // Never became ready: removed, never waited on forever.
    return phase === "starting" && this.clock.now() - member.createdAt > this.config.createTimeoutMs;
  }

  /** Starts one member and waits for its runnerd; false (and nothing left) when it does not make it. */
  private async startMember(name: string, profile: Profile, image: string): Promise<boolean> {
    const memberId = `p-${memberSuffix()}`;
    const deadline = new Deadline(this.clock, this.config.createTimeoutMs);
    try {
      const made = await this.backend.create(this.memberSpec(memberId, name, profile, image), deadline.signal);
      if (!made.endpoint) throw new Error("the pool member has no address");
      const client = new RunnerdClient(made.endpoint, runnerdToken(this.config.runnerdSecret, memberId));
      for (;;) {
        try {
          await client.status(Math.max(100, Math.min(1000, deadline.remainingMs())));
          break;
        } catch (error) {
          if (deadline.expired()) throw error;
          await sleep(this.clock, 20);
        }
      }
      await client.warmUp(Math.max(1000, deadline.remainingMs()));
      // Claimable at once by this replica (the others see it at their next listing).
      const members = [
        ...(this.ready.get(name) ?? []).filter((m) => m.memberId !== memberId),
        {
          memberId,
          profile: name,
          image,
          imageId: undefined,
          state: { phase: "running" as const },
          endpoint: made.endpoint,
          createdAt: this.clock.now(),
        },
      ];
      this.ready.set(name, members);
      this.metrics.poolMembers.set({ profile: name }, members.filter((m) => m.state.phase === "running").length);
      this.metrics.poolStarts.inc({ profile: name, outcome: "ready" });
      this.log.info({ profile: name, memberId }, "pool member ready");
      return true;
    } catch (error) {
      this.metrics.poolStarts.inc({ profile: name, outcome: "failed" });
      if (!(error instanceof BackendConflictError)) {
        this.log.warn({ profile: name, memberId, err: error }, "a pool member did not start");
      }
      await this.backend.destroy(memberId).catch((cleanup: unknown) => {
        this.log.error({ memberId, err: cleanup }, "could not remove a pool member that did not start");
      });
      return false;
    } finally {
      deadline.dispose();
    }
  }

  /** A member: a session-to-be of the profile's default image, resources and workspace, and no identity. */
  private memberSpec(memberId: string, name: string, profile: Profile, image: string): BackendSessionSpec {
    const resources = this.config.resources.defaults;
    const workspace = profile.workspace;
    return {
      id: memberId,
      image,
      meta: {
        labels: { [LABELS.sessionId]: memberId, [LABELS.pool]: name },
        annotations: {
          [ANNOTATIONS.profile]: name,
          [ANNOTATIONS.image]: image,
          [ANNOTATIONS.createdAt]: String(this.clock.now()),
          [ANNOTATIONS.cpus]: String(resources.cpus),
          [ANNOTATIONS.memoryMb]: String(resources.memoryMb),
          [ANNOTATIONS.pids]: String(resources.pids),
          [ANNOTATIONS.workspace]: workspaceText(workspace),
        },
      },
      runnerdEnv: runnerdEnvironment(
        runnerdTokenSha256(this.config.runnerdSecret, memberId),
        resources.memoryMb,
        this.config.runnerdEnv,
      ),
      resources,
      workspace: { persistent: workspace.persistent, sizeMb: workspace.sizeMb, storageClass: workspace.storageClass },
    };
  }
}
