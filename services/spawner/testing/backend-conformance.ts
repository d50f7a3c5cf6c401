import { randomBytes } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import {
  ANNOTATIONS,
  type FailureCode,
  LABELS,
  leaseAnnotations,
  leaseOfAnnotations,
  RunnerdStatusSchema,
  sha256Hex,
} from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type {
  BackendSession,
  BackendSessionSpec,
  Endpoint,
  HeldLock,
  SessionBackend,
  WorkspaceSpec,
} from "../src/backends/backend.js";
import {
  BackendConflictError,
  BackendNotFoundError,
  ImageUnavailableError,
  StartFailedError,
  StartTimeoutError,
} from "../src/backends/backend-errors.js";
import { runnerdEnvironment } from "../src/backends/runtime-contract.js";
import { loadConfig } from "../src/config.js";
import { metaOf, recordFromMeta } from "../src/sessions/session-record.js";
import { resolveSpec } from "../src/sessions/session-spec.js";

/** What a platform gives the conformance suite. */
export interface ConformanceHarness {
  /** A backend of a deployment of its own, initialised. */
  backend: SessionBackend;
  images: {
    /** The runtime image: runs, and its runnerd answers. */
    runs: string;
    /** No such image anywhere. */
    missing: string;
    /** Exits at once. */
    quits: string;
    /** Runs but never gets an address or never answers. */
    silent: string;
    /** Runs runnerd, and runs out of memory when `oomKill` says so. */
    oom: string;
  };
  /** The workspace sessions get (default: an ephemeral 1 GiB). */
  workspace?: WorkspaceSpec;
  /** A workspace that outlives its container or Pod, for the stop and resume test (default: `workspace`). */
  stoppableWorkspace?: WorkspaceSpec;
  /** How long to give a create before the test calls it stuck. */
  createTimeoutMs: number;
  /** Kills the session's container or Pod as a crash would (SIGKILL). */
  kill(session: RunningSession): Promise<void>;
  /** Makes a session of the `oom` image run out of memory. */
  oomKill(session: RunningSession): Promise<void>;
  /** Removes the session's container or Pod behind the backend's back. */
  removeOutOfBand(session: RunningSession): Promise<void>;
  teardown(): Promise<void>;
}

/** A session the suite made, with the token its runnerd takes. */
export interface RunningSession {
  id: string;
  endpoint: Endpoint;
  token: string;
}

/** How soon a destroyed session's objects must be gone. */
const GONE_WITHIN_MS = 60_000;
/** How soon a dead session must be reported failed. */
const FAILURE_REPORT_MS = 15_000;
/** Each test makes real containers or Pods on the real backends. */
const TEST_TIMEOUT_MS = 90_000;

const config = loadConfig({
  SPAWNER_HMAC_KEYS: "conformance:0123456789abcdef0123",
  SPAWNER_RUNNERD_SECRET: "conformance-runnerd-secret-0123456789abcdef",
  SPAWNER_MAX_TTL_MS: String(7 * 24 * 3_600_000),
});

/**
 * One suite, every backend: create/find/list/destroy and their idempotency,
 * all-or-nothing creates, conflicts, the two layers of truth at their
 * limits, failure reasons and deadlines. `setup` runs once; each test makes
 * its own sessions and leaves none behind.
 */
export function runBackendConformance(name: string, setup: () => Promise<ConformanceHarness>): void {
  describe(`backend conformance: ${name}`, () => {
    let h: ConformanceHarness;
    const made = new Set<string>();

    beforeAll(async () => {
      h = await setup();
    });
    afterAll(async () => {
      if (!h) return;
      for (const id of made) await h.backend.destroy(id).catch(() => false);
      await h.backend.close();
      await h.teardown();
    });

    const newId = (prefix: string) => `${prefix}-${randomBytes(3).toString("hex")}`;

    function specOf(
      id: string,
      image: string,
      labelCount = 3,
      workspace: WorkspaceSpec = h.workspace ?? { persistent: false, sizeMb: 1024 },
    ): { spec: BackendSessionSpec; token: string } {
      const labels: Record<string, string> = {};
      for (let i = 0; i < labelCount; i++) labels[`label-${i}.${"x".repeat(50)}`] = `value-${i}${"v".repeat(55)}`;
      const { record } = resolveSpec(
        { id, org: `org-${"o".repeat(59)}`, owner: `${"o".repeat(100)}@example.com`, labels, image },
        {
          ...config,
          profiles: new Map([
            ["default", { images: [image], workspace, idle: "stop" as const, pool: { size: 0, maxStarting: 1 } }],
          ]),
        },
        Date.now(),
      );
      const token = randomBytes(32).toString("hex");
      made.add(id);
      return {
        spec: {
          id,
          image,
          meta: metaOf(record),
          runnerdEnv: runnerdEnvironment(sha256Hex(token), 256, {}),
          resources: { cpus: 0.5, memoryMb: 256, pids: 256 },
          workspace: record.workspace,
        },
        token,
      };
    }

    /** A warm pool member of the `default` pool: a session-to-be with no identity. */
    async function createMember(memberId: string, workspace?: WorkspaceSpec): Promise<RunningSession> {
      const { spec, token } = specOf(memberId, h.images.runs, 3, workspace);
      const meta = {
        labels: { [LABELS.sessionId]: memberId, [LABELS.pool]: "default" },
        annotations: {
          [ANNOTATIONS.profile]: "default",
          [ANNOTATIONS.image]: h.images.runs,
          [ANNOTATIONS.createdAt]: String(Date.now()),
        },
      };
      const made = await h.backend.create({ ...spec, meta }, AbortSignal.timeout(h.createTimeoutMs));
      if (!made.endpoint) throw new Error("a pool member has no endpoint");
      return { id: memberId, endpoint: made.endpoint, token };
    }

    async function create(id: string, image: string): Promise<RunningSession & { session: BackendSession }> {
      const { spec, token } = specOf(id, image);
      const session = await h.backend.create(spec, AbortSignal.timeout(h.createTimeoutMs));
      if (!session.endpoint) throw new Error("a created session has no endpoint");
      return { id, endpoint: session.endpoint, token, session };
    }

    /** Asks runnerd itself: proves the address is right and runnerd got its token's hash. */
    async function runnerdAnswers(s: RunningSession): Promise<void> {
      const deadline = Date.now() + h.createTimeoutMs;
      for (;;) {
        try {
          const response = await fetch(`http://${s.endpoint.host}:${s.endpoint.port}/v1/status`, {
            headers: { authorization: `Bearer ${s.token}` },
            signal: AbortSignal.timeout(1000),
          });
          expect(response.status).toBe(200);
          RunnerdStatusSchema.parse(await response.json());
          return;
        } catch (error) {
          if (Date.now() > deadline) throw error;
          await delay(50);
        }
      }
    }

    async function putFile(s: RunningSession, file: string, text: string): Promise<void> {
      const response = await fetch(`http://${s.endpoint.host}:${s.endpoint.port}/v1/files/content?path=${file}`, {
        method: "PUT",
        headers: { authorization: `Bearer ${s.token}` },
        body: text,
      });
      expect(response.status).toBe(200);
    }

    async function getFile(s: RunningSession, file: string): Promise<string> {
      const response = await fetch(`http://${s.endpoint.host}:${s.endpoint.port}/v1/files/content?path=${file}`, {
        headers: { authorization: `Bearer ${s.token}` },
      });
      return response.text();
    }

    /**
     * Waits until nothing of the session is left. Destroy means "gone or going": Docker removes at
     * once, a Pod terminates in the background, and meanwhile reads as terminating, never running.
     */
    async function nothingLeftOf(id: string): Promise<void> {
      const deadline = Date.now() + GONE_WITHIN_MS;
      for (;;) {
        const found = await h.backend.find(id);
        const owned = (await h.backend.owned()).filter((o) => o.sessionId === id);
        if (found === undefined && owned.length === 0) return;
        if (found) expect(found.state.phase).toBe("terminating");
        if (Date.now() > deadline) {
          expect({ found, owned }).toEqual({ found: undefined, owned: [] });
          return;
        }
        await delay(200);
      }
    }

    /** Starts listening to the change feed for the session's failure (before the harm is done). */
    function failureFeed(id: string): Promise<BackendSession | undefined> {
      return new Promise((resolve) => {
        const stop = h.backend.watch((changed, session) => {
          if (changed === id && session?.state.phase === "failed") {
            stop();
            resolve(session);
          }
        });
        setTimeout(() => {
          stop();
          resolve(undefined);
        }, FAILURE_REPORT_MS).unref();
      });
    }

    /** Waits until the backend reports the session failed, by lookup and by its change feed. */
    async function reportedFailed(
      id: string,
      code: FailureCode,
      feed: Promise<BackendSession | undefined>,
    ): Promise<void> {
      const started = Date.now();
      let found: BackendSession | undefined;
      while (Date.now() - started < FAILURE_REPORT_MS) {
        found = await h.backend.find(id);
        if (found?.state.phase === "failed") break;
        await delay(100);
      }
      expect(found?.state).toMatchObject({ phase: "failed", reason: { code } });
      if (found?.state.phase === "failed") expect(found.state.reason.message).not.toBe("");
      expect(found?.endpoint).toBeUndefined();
      expect((await feed)?.state).toMatchObject({ phase: "failed", reason: { code } });
    }

    it(
      "creates a running session whose runnerd answers at the address it reports",
      async () => {
        const s = await create(newId("run"), h.images.runs);
        expect(s.session.state).toEqual({ phase: "running" });
        await runnerdAnswers(s);
        await h.backend.destroy(s.id);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "keeps labels and annotations at their limits, and finds and lists the session by them",
      async () => {
        const id = `${"l".repeat(56)}-${randomBytes(3).toString("hex")}`;
        const { spec } = specOf(id, h.images.runs, 32);
        const before = recordFromMeta(spec.meta);
        await h.backend.create(spec, AbortSignal.timeout(h.createTimeoutMs));
        const found = await h.backend.find(id);
        expect(found && recordFromMeta(found.meta)).toEqual(before);
        const listed = (await h.backend.list()).find((s) => s.id === id);
        expect(listed && recordFromMeta(listed.meta)).toEqual(before);
        expect((await h.backend.owned()).some((o) => o.sessionId === id)).toBe(true);
        await h.backend.destroy(id);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "refuses a second create of the same id with a conflict, leaving the first untouched",
      async () => {
        const s = await create(newId("twice"), h.images.runs);
        const { spec } = specOf(s.id, h.images.runs);
        await expect(h.backend.create(spec, AbortSignal.timeout(h.createTimeoutMs))).rejects.toBeInstanceOf(
          BackendConflictError,
        );
        expect((await h.backend.find(s.id))?.state.phase).toBe("running");
        await runnerdAnswers(s);
        await h.backend.destroy(s.id);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "makes one session of concurrent creates of one id",
      async () => {
        const id = newId("race");
        const results = await Promise.allSettled(
          [0, 1, 2, 3].map(() =>
            h.backend.create(specOf(id, h.images.runs).spec, AbortSignal.timeout(h.createTimeoutMs)),
          ),
        );
        expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
        for (const r of results) {
          if (r.status === "rejected") expect(r.reason).toBeInstanceOf(BackendConflictError);
        }
        expect((await h.backend.list()).filter((s) => s.id === id)).toHaveLength(1);
        await h.backend.destroy(id);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "destroys idempotently: true, then false, and nothing of the session is left",
      async () => {
        const s = await create(newId("gone"), h.images.runs);
        expect(await h.backend.destroy(s.id)).toBe(true);
        await nothingLeftOf(s.id);
        expect(await h.backend.destroy(s.id)).toBe(false);
        expect(await h.backend.destroy(newId("never"))).toBe(false);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "reports a missing image as such and leaves nothing behind",
      async () => {
        const id = newId("noimage");
        await expect(
          h.backend.create(specOf(id, h.images.missing).spec, AbortSignal.timeout(h.createTimeoutMs)),
        ).rejects.toBeInstanceOf(ImageUnavailableError);
        await nothingLeftOf(id);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "fails a create whose container exits, or reports it failed at once; nothing is left",
      async () => {
        const id = newId("quits");
        const started = Date.now();
        const feed = failureFeed(id);
        const error = await h.backend
          .create(specOf(id, h.images.quits).spec, AbortSignal.timeout(h.createTimeoutMs))
          .catch((e: unknown) => e);
        if (error instanceof Error) {
          // It exited before it had an address: the create says why and leaves nothing.
          expect(error).toBeInstanceOf(StartFailedError);
          if (error instanceof StartFailedError) expect(error.reason.code).toBe("exited");
          expect(Date.now() - started).toBeLessThan(h.createTimeoutMs);
          await nothingLeftOf(id);
        } else {
          // It had an address for a moment: the backend must report the exit, and the caller
          // (which waits for runnerd) removes it.
          await reportedFailed(id, "exited", feed);
          expect(await h.backend.destroy(id)).toBe(true);
          await nothingLeftOf(id);
        }
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "gives up at the deadline its signal carries, removing what it made; a silent runnerd is the caller's to time out",
      async () => {
        // The deadline passes while the platform is starting the session (its container or Pod
        // exists, it has no address yet): the create ends StartTimeoutError and leaves nothing.
        const id = newId("late");
        const deadline = new AbortController();
        const stopWatching = h.backend.watch((seen) => {
          if (seen === id) deadline.abort(new Error("the test's deadline"));
        });
        const error = await h.backend
          .create(specOf(id, h.images.runs).spec, deadline.signal)
          .catch((e: unknown) => e)
          .finally(stopWatching);
        expect(deadline.signal.aborted).toBe(true);
        expect(error).toBeInstanceOf(StartTimeoutError);
        await nothingLeftOf(id);

        // A runnerd that never answers: a backend that gives it an address returns it, and the
        // caller's own wait for runnerd ends the create; one that never gets an address times out.
        const silent = newId("silent");
        const made: BackendSession | Error = await h.backend
          .create(specOf(silent, h.images.silent).spec, AbortSignal.timeout(1500))
          .catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
        if (made instanceof Error) {
          expect(made).toBeInstanceOf(StartTimeoutError);
        } else {
          if (!made.endpoint) throw new Error("a created session without an address");
          const answered = await fetch(`http://${made.endpoint.host}:${made.endpoint.port}/healthz`, {
            signal: AbortSignal.timeout(1000),
          }).then(
            () => true,
            () => false,
          );
          expect(answered).toBe(false);
          expect(await h.backend.destroy(silent)).toBe(true);
        }
        await nothingLeftOf(silent);

        const aborted = newId("aborted");
        const controller = new AbortController();
        controller.abort();
        await expect(h.backend.create(specOf(aborted, h.images.silent).spec, controller.signal)).rejects.toBeInstanceOf(
          StartTimeoutError,
        );
        await nothingLeftOf(aborted);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "reports a killed session as failed with the reason, by lookup and by its change feed",
      async () => {
        const s = await create(newId("killed"), h.images.runs);
        await runnerdAnswers(s);
        const feed = failureFeed(s.id);
        await h.kill(s);
        await reportedFailed(s.id, "exited", feed);
        expect(await h.backend.destroy(s.id)).toBe(true);
        await nothingLeftOf(s.id);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "reports an out-of-memory kill as oom-killed",
      async () => {
        const s = await create(newId("oom"), h.images.oom);
        await runnerdAnswers(s);
        const feed = failureFeed(s.id);
        await h.oomKill(s);
        await reportedFailed(s.id, "oom-killed", feed);
        await h.backend.destroy(s.id);
        await nothingLeftOf(s.id);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "reports a session removed behind its back as failed (removed) or gone, never as running",
      async () => {
        const s = await create(newId("removed"), h.images.runs);
        await h.removeOutOfBand(s);
        const deadline = Date.now() + 20_000;
        let found = await h.backend.find(s.id);
        while (found !== undefined && found.state.phase !== "failed" && Date.now() < deadline) {
          expect(found.state.phase).not.toBe("running");
          await delay(200);
          found = await h.backend.find(s.id);
        }
        if (found) expect(found.state).toMatchObject({ phase: "failed", reason: { code: "removed" } });
        await h.backend.destroy(s.id);
        await nothingLeftOf(s.id);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "keeps the lease it is given in the platform, running and stopped; stops keeping the workspace, and resumes",
      async () => {
        const id = newId("nap");
        const { spec, token } = specOf(id, h.images.runs, 3, h.stoppableWorkspace ?? h.workspace);
        const made = await h.backend.create(spec, AbortSignal.timeout(h.createTimeoutMs));
        if (!made.endpoint) throw new Error("no endpoint");
        const s = { id, endpoint: made.endpoint, token };
        await runnerdAnswers(s);
        await putFile(s, "kept.txt", "before the stop");
        const leaseOf = async () => leaseOfAnnotations((await h.backend.find(id))?.meta.annotations ?? {});
        const lease = { expiresAt: Date.now() + 3_600_000, idleTimeoutMs: 60_000 };
        await h.backend.amend(id, leaseAnnotations(lease));
        expect(await leaseOf()).toEqual(lease);
        await h.backend.stop(id);
        const stopped = await h.backend.find(id);
        expect(stopped?.state).toMatchObject({ phase: "stopped" });
        expect(stopped?.endpoint).toBeUndefined();
        expect(await leaseOf()).toEqual(lease);
        expect((await h.backend.list()).find((x) => x.id === id)?.state.phase).toBe("stopped");
        // A stopped session's lease changes too, without waking it; the newest lease is the one read.
        const later = { expiresAt: lease.expiresAt + 60_000, idleTimeoutMs: 90_000 };
        await h.backend.amend(id, leaseAnnotations(later));
        expect(await leaseOf()).toEqual(later);
        expect((await h.backend.list()).find((x) => x.id === id)?.meta.annotations).toMatchObject(
          leaseAnnotations(later),
        );
        const resumed = await h.backend.resume(spec, AbortSignal.timeout(h.createTimeoutMs));
        expect(resumed.state).toEqual({ phase: "running" });
        if (!resumed.endpoint) throw new Error("no endpoint after resume");
        const again = { id, endpoint: resumed.endpoint, token };
        await runnerdAnswers(again);
        expect(await getFile(again, "kept.txt")).toBe("before the stop");
        expect((await h.backend.find(id))?.state.phase).toBe("running");
        expect(await leaseOf()).toEqual(later);
        expect(await h.backend.destroy(id)).toBe(true);
        await nothingLeftOf(id);
        await expect(h.backend.amend(id, leaseAnnotations(lease))).rejects.toBeInstanceOf(BackendNotFoundError);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "gives a claimed member's persistent workspace claim to the session: owned by it, removed with it",
      async (context) => {
        const workspace = h.stoppableWorkspace;
        if (!workspace?.persistent) {
          // Where every workspace is one volume with its container, the claim test below covers it.
          const why = `the ${name} harness names no persistent workspace (stoppableWorkspace)`;
          console.warn(`SKIPPING the persistent-workspace claim test: ${why}`);
          context.skip(why);
          return;
        }
        const memberId = newId("p");
        const member = await createMember(memberId, workspace);
        await runnerdAnswers(member);
        const listed = (await h.backend.listPool()).find((m) => m.memberId === memberId);
        if (!listed) throw new Error("the member is not listed");
        const id = newId("warm");
        await h.backend.claim(listed, specOf(id, h.images.runs, 3, workspace).spec.meta);
        const owned = await h.backend.owned();
        // The workspace is the session's now: found by its id, nothing left under the member's.
        expect(owned.filter((o) => o.sessionId === id).map((o) => o.kind)).toContain("pvc");
        expect(owned.filter((o) => o.sessionId === memberId)).toEqual([]);
        expect(await h.backend.destroy(id)).toBe(true);
        await nothingLeftOf(id);
        await nothingLeftOf(memberId);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "keeps pool members out of the sessions, and makes one a session when claimed, once however many claim it",
      async () => {
        const memberId = newId("p");
        const member = await createMember(memberId);
        await runnerdAnswers(member);
        await putFile(member, "warm.txt", "made before the claim");
        const listed = (await h.backend.listPool()).find((m) => m.memberId === memberId);
        expect(listed).toMatchObject({
          memberId,
          profile: "default",
          image: h.images.runs,
          state: { phase: "running" },
        });
        expect(listed?.endpoint).toEqual(member.endpoint);
        expect(await h.backend.find(memberId)).toBeUndefined();
        expect((await h.backend.list()).map((x) => x.id)).not.toContain(memberId);
        if (!listed) throw new Error("the member is not listed");

        // Three sessions race for the one member: exactly one gets it, the others are refused.
        const ids = [newId("warm"), newId("warm"), newId("warm")];
        const metas = ids.map((id) => specOf(id, h.images.runs).spec.meta);
        const results = await Promise.allSettled(metas.map((meta) => h.backend.claim(listed, meta)));
        const won = results.flatMap((r, i) =>
          r.status === "fulfilled" ? [{ id: ids[i] as string, session: r.value }] : [],
        );
        expect(won).toHaveLength(1);
        for (const r of results) {
          if (r.status === "rejected") expect(r.reason).toBeInstanceOf(BackendConflictError);
        }
        const winner = won[0];
        if (!winner) throw new Error("no claim won");
        expect(winner.session.endpoint).toEqual(member.endpoint);
        expect((await h.backend.listPool()).map((m) => m.memberId)).not.toContain(memberId);

        // The session is found by its own id, with its identity and the member its runnerd was made for.
        const found = await h.backend.find(winner.id);
        expect(found?.state.phase).toBe("running");
        const record = recordFromMeta(found?.meta ?? { labels: {}, annotations: {} });
        expect(record?.id).toBe(winner.id);
        expect(record?.runnerdKey).toBe(memberId);
        expect((await h.backend.list()).map((x) => x.id)).toContain(winner.id);
        for (const lost of ids.filter((id) => id !== winner.id)) expect(await h.backend.find(lost)).toBeUndefined();
        expect(await getFile({ ...member, id: winner.id }, "warm.txt")).toBe("made before the claim");

        expect(await h.backend.destroy(winner.id)).toBe(true);
        await nothingLeftOf(winner.id);
        await nothingLeftOf(memberId);
        for (const lost of ids.filter((id) => id !== winner.id)) await nothingLeftOf(lost);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "gives a lock to one holder at a time, breaks one whose holder let it expire, and never lets a late holder end another's",
      async () => {
        const name = newId("lock");
        const taken = await Promise.all(Array.from({ length: 5 }, () => h.backend.tryLock(name, { ttlMs: 60_000 })));
        const held = taken.filter((lock) => lock !== undefined);
        expect(held).toHaveLength(1);
        expect(await h.backend.tryLock(name, { ttlMs: 60_000 })).toBeUndefined();
        await h.backend.unlock(held[0] as HeldLock);
        // A holder that died: its lock expires and the next one takes it.
        const late = await h.backend.tryLock(name, { ttlMs: 1000 });
        expect(late).toBeDefined();
        await delay(2100);
        const next = await h.backend.tryLock(name, { ttlMs: 60_000 });
        expect(next).toBeDefined();
        // The late holder gives back what it took: the next holder keeps its own.
        await h.backend.unlock(late as HeldLock);
        expect(await h.backend.tryLock(name, { ttlMs: 60_000 })).toBeUndefined();
        await h.backend.unlock(next as HeldLock);
        await h.backend.unlock(next as HeldLock); // twice is fine
        const again = await h.backend.tryLock(name, { ttlMs: 60_000 });
        expect(again).toBeDefined();
        await h.backend.unlock(again as HeldLock);
      },
      TEST_TIMEOUT_MS,
    );

    it(
      "keeps a lock its holder renews past its lifetime, and lets it go once the holder stops",
      async (context) => {
        const renew = h.backend.renewLock.bind(h.backend);
        if (!h.backend.capabilities.renewableLocks) {
          const why = `${name} cannot extend a lock in place (its locks live a whole create timeout)`;
          console.warn(`SKIPPING the lock renewal test: ${why}`);
          context.skip(why);
          return;
        }
        const lockName = newId("lock");
        const held = await h.backend.tryLock(lockName, { ttlMs: 2000 });
        if (!held) throw new Error("the lock was not taken");
        for (let i = 0; i < 3; i++) {
          await delay(1000);
          expect(await renew(held, 2000)).toBe(true);
        }
        // Three seconds after it was taken for two: still held.
        expect(await h.backend.tryLock(lockName, { ttlMs: 60_000 })).toBeUndefined();
        // The holder stops renewing (it died): the lock expires, the next one takes it.
        await delay(2600);
        const next = await h.backend.tryLock(lockName, { ttlMs: 60_000 });
        expect(next).toBeDefined();
        expect(await renew(held, 2000)).toBe(false);
        await h.backend.unlock(next as HeldLock);
      },
      TEST_TIMEOUT_MS,
    );
  });
}
