import { ErrorEnvelopeSchema, SessionListResponseSchema, SessionResponseSchema } from "@sbx/protocol";
import type { PoolMember } from "@sbx/spawner";
import { afterAll, describe, expect, it } from "vitest";
import { eventually, sleep } from "./proc.js";
import { skippedBecause } from "./skips.js";
import type { SpawnerHandle, StartSpawnerOptions } from "./spawner.js";

export interface WarmPoolOptions {
  backend: "docker" | "kubernetes";
  /** Why the suite cannot run here (it is then skipped and says so). */
  skip: string | undefined;
  start(options: StartSpawnerOptions): Promise<SpawnerHandle>;
  /** The deployment's unclaimed pool members, as its backend lists them. */
  members(deployment: string): Promise<PoolMember[]>;
  /** A second tag of the runtime image the platform can run (a changed profile image). */
  otherImage(): Promise<string>;
  /** Makes the image `image` names anew (a rebuilt tag), where the platform tells image ids apart. */
  rebuild?(image: string): Promise<void>;
  /** The running container or Pod an operator finds for a session id, the way docs/api.md says to look. */
  findSession(deployment: string, id: string): Promise<string[]>;
  /** Names of every object the deployment still owns. */
  leftovers(deployment: string): Promise<string[]>;
  cleanup(deployment: string): Promise<void>;
}

const SUITE_TIMEOUT_MS = 180_000;

/**
 * Warm pools through real spawners on a real backend: filled in the
 * background and invisible as sessions; a create claims a member with its
 * identity, labels, lease and env; members never count against capacity;
 * the pool refills, is adopted by a restarted spawner, never grows past its
 * size whatever the number of replicas, replaces members of a stale image,
 * backs off an image that cannot start, and leaves nothing behind.
 */
export function runWarmPoolSuite(options: WarmPoolOptions): void {
  describe(`warm pool (${options.backend})`, skippedBecause(options.skip), () => {
    const running: SpawnerHandle[] = [];
    /** Every replica the suite started, stopped or not: their logs explain a failure. */
    const everyone: SpawnerHandle[] = [];
    let deployment: string | undefined;
    let secrets: { secret: string; runnerdSecret: string } | undefined;

    const start = async (env: Record<string, string>) => {
      const spawner = await options.start({
        ...(deployment ? { deployment } : {}),
        ...(secrets ? { secrets } : {}),
        // At debug, a replica logs each pool lock it takes and gives back: a failure's story.
        env: { SPAWNER_POOL_INTERVAL_MS: "300", SPAWNER_SWEEP_INTERVAL_MS: "1000", SPAWNER_LOG_LEVEL: "debug", ...env },
      });
      deployment = spawner.deployment;
      secrets = { secret: spawner.secret, runnerdSecret: spawner.runnerdSecret };
      running.push(spawner);
      everyone.push(spawner);
      return spawner;
    };
    /** What every replica logged about pools and locks, and what the deployment still owns: a failure's story. */
    const poolStory = async () => {
      const lines = everyone.flatMap((s, i) =>
        s
          .logs()
          .split("\n")
          .filter((line) => /pool|lock|shutting/i.test(line))
          .slice(-15)
          .map((line) => `replica ${i} (pid ${s.child.pid}): ${line}`),
      );
      const owned = deployment ? await options.leftovers(deployment).catch((e: unknown) => [String(e)]) : [];
      return `${lines.join("\n")}\nowned now: ${owned.join(", ")}\n`;
    };
    const stopAll = async () => {
      for (const s of running.splice(0)) await s.stop();
    };
    afterAll(async () => {
      await stopAll();
      if (deployment) await options.cleanup(deployment);
    });

    const ready = async (profile = "default") =>
      (await options.members(deployment ?? "")).filter((m) => m.profile === profile && m.state.phase === "running");
    const poolFilled = async (size: number, profile = "default") =>
      eventually(async () => (await ready(profile)).length === size, 90_000);
    const create = async (spawner: SpawnerHandle, body: Record<string, unknown>) =>
      spawner.json("POST", "/v1/sessions", { org: "warm", ...body });
    const metric = async (spawner: SpawnerHandle, name: string) => {
      const text = await (await fetch(`${spawner.metricsUrl()}/metrics`)).text();
      return text
        .split("\n")
        .filter((line) => line.startsWith(name))
        .reduce((sum, line) => sum + Number(line.split(" ").at(-1)), 0);
    };

    /** The spawner itself sees the members ready (what its creates claim from). */
    const spawnerSees = async (spawner: SpawnerHandle, size: number, profile = "default") =>
      eventually(async () => (await metric(spawner, `sbx_pool_members{profile="${profile}"}`)) === size, 90_000);

    it(
      "fills the pool in the background; members are no sessions and take no capacity; a create claims one",
      async () => {
        const spawner = await start({ SPAWNER_POOL_SIZE: "2", SPAWNER_MAX_SESSIONS: "2" });
        expect(await poolFilled(2)).toBe(true);
        expect(await spawnerSees(spawner, 2)).toBe(true);
        const listed = SessionListResponseSchema.parse((await spawner.json("GET", "/v1/sessions")).body);
        expect(listed.sessions).toEqual([]);
        const before = (await ready()).map((m) => m.memberId);

        const made = await create(spawner, {
          id: "warm-1",
          labels: { team: "pool" },
          env: { GREETING: "hello from the pool" },
          ttlMs: 3_600_000,
          idleTimeoutMs: 600_000,
        });
        expect(made.status, JSON.stringify(made.body)).toBe(201);
        const session = SessionResponseSchema.parse(made.body).session;
        expect(session).toMatchObject({ id: "warm-1", org: "warm", state: "ready", labels: { team: "pool" } });
        expect(session.idleTimeoutMs).toBe(600_000);
        expect(Math.abs(session.expiresAt - (Date.now() + 3_600_000))).toBeLessThan(60_000);
        expect(await metric(spawner, "sbx_pool_claims_total")).toBe(1);
        expect(await options.findSession(spawner.deployment, "warm-1")).toHaveLength(1);
        // One of the members it had became the session; the others are still members.
        const after = (await options.members(spawner.deployment)).map((m) => m.memberId);
        expect(before.filter((m) => !after.includes(m))).toHaveLength(1);

        const run = await spawner.json("POST", "/v1/sessions/warm-1/execs?wait=true", {
          shell: 'echo "$GREETING"; cat /proc/self/status | grep -c ^Pid',
        });
        expect(run.status).toBe(200);
        expect(run.body).toMatchObject({ exitCode: 0, stdout: "hello from the pool\n1\n" });
        const got = SessionResponseSchema.parse((await spawner.json("GET", "/v1/sessions/warm-1")).body).session;
        expect(got).toMatchObject({ state: "ready", expiresAt: session.expiresAt, idleTimeoutMs: 600_000 });

        // The pool refills, and its members still take none of the two sessions allowed.
        expect(await poolFilled(2)).toBe(true);
        expect((await create(spawner, { id: "warm-2" })).status).toBe(201);
        const third = await create(spawner, { id: "warm-3" });
        expect(third.status).toBe(429);
        expect(ErrorEnvelopeSchema.parse(third.body).error.code).toBe("CAPACITY_EXCEEDED");
        expect((await spawner.request("DELETE", "/v1/sessions/warm-2")).status).toBe(204);
      },
      SUITE_TIMEOUT_MS,
    );

    it(
      "starts cold what the pool does not keep (other resources), leaving the pool as it was",
      async () => {
        const [spawner] = running;
        if (!spawner) throw new Error("no spawner");
        expect(await poolFilled(2)).toBe(true);
        expect(await spawnerSees(spawner, 2)).toBe(true);
        const before = (await ready()).map((m) => m.memberId).sort();
        const claims = await metric(spawner, "sbx_pool_claims_total");
        const made = await create(spawner, { id: "cold-1", resources: { memoryMb: 384 } });
        expect(made.status, JSON.stringify(made.body)).toBe(201);
        expect((await ready()).map((m) => m.memberId).sort()).toEqual(before);
        expect(await metric(spawner, "sbx_pool_claims_total")).toBe(claims);
        expect((await spawner.request("DELETE", "/v1/sessions/cold-1")).status).toBe(204);
      },
      SUITE_TIMEOUT_MS,
    );

    it(
      "is adopted by a restarted spawner: the claimed session answers, and the members are kept",
      async () => {
        const before = (await ready()).map((m) => m.memberId).sort();
        expect(before).toHaveLength(2);
        await stopAll();
        const spawner = await start({ SPAWNER_POOL_SIZE: "2" });
        const run = await spawner.json("POST", "/v1/sessions/warm-1/execs?wait=true", { shell: 'echo "$GREETING"' });
        expect(run.status).toBe(200);
        expect(run.body).toMatchObject({ stdout: "hello from the pool\n" });
        // Several fill rounds later, the same members: none replaced, none added.
        await sleep(2000);
        expect((await ready()).map((m) => m.memberId).sort()).toEqual(before);
        expect(await metric(spawner, "sbx_pool_starts_total")).toBe(0);
      },
      SUITE_TIMEOUT_MS,
    );

    it(
      "never has more members than its size, whatever the replicas, under concurrent creates",
      async () => {
        await stopAll();
        const replicas = await Promise.all([1, 2, 3].map(() => start({ SPAWNER_POOL_SIZE: "3" })));
        let most = 0;
        let watching = true;
        const watcher = (async () => {
          while (watching) {
            most = Math.max(most, (await options.members(deployment ?? "")).length);
            await sleep(50);
          }
        })();
        try {
          expect(await poolFilled(3)).toBe(true);
          for (const r of replicas) expect(await spawnerSees(r, 3)).toBe(true);
          const ids = Array.from({ length: 6 }, (_, i) => `rush-${i}`);
          const results = await Promise.all(
            ids.map((id, i) => create(replicas[i % replicas.length] as SpawnerHandle, { id })),
          );
          for (const r of results) expect(r.status, JSON.stringify(r.body)).toBe(201);
          const claims = (await Promise.all(replicas.map((r) => metric(r, "sbx_pool_claims_total")))).reduce(
            (a, b) => a + b,
          );
          expect(claims).toBeGreaterThanOrEqual(1);
          expect(claims).toBeLessThanOrEqual(3);
          expect(await poolFilled(3)).toBe(true);
          await sleep(2000);
        } finally {
          watching = false;
          await watcher;
        }
        expect(most).toBeLessThanOrEqual(3);
        expect((await options.members(deployment ?? "")).length).toBe(3);
        const sessions = SessionListResponseSchema.parse((await replicas[0]?.json("GET", "/v1/sessions"))?.body);
        expect(sessions.sessions.map((s) => s.id).sort()).toEqual([
          "rush-0",
          "rush-1",
          "rush-2",
          "rush-3",
          "rush-4",
          "rush-5",
          "warm-1",
        ]);
        for (const id of ["rush-0", "rush-1", "rush-2", "rush-3", "rush-4", "rush-5"]) {
          expect((await replicas[1]?.request("DELETE", `/v1/sessions/${id}`))?.status).toBe(204);
        }
      },
      SUITE_TIMEOUT_MS,
    );

    it(
      "replaces members of an image that is no longer the profile's, or was rebuilt",
      async () => {
        await stopAll();
        const other = await options.otherImage();
        const profiles = (image: string) =>
          JSON.stringify({ fresh: { images: [image, "sbx-runtime:latest"], pool: { size: 1 } } });
        await start({ SPAWNER_POOL_SIZE: "0", SPAWNER_PROFILES: profiles("sbx-runtime:latest") });
        expect(await poolFilled(1, "fresh")).toBe(true);
        // The default pool, made empty, is emptied.
        // The replicas stopped above gave their locks back (see "gives its pool lock back" below).
        // If this fails, the story says which replica took the lock last and what it logged since.
        const emptied = await eventually(async () => (await ready()).length === 0, 75_000);
        if (!emptied) process.stderr.write(await poolStory());
        expect(emptied).toBe(true);
        const old = (await ready("fresh"))[0];
        await stopAll();
        await start({ SPAWNER_POOL_SIZE: "0", SPAWNER_PROFILES: profiles(other) });
        expect(
          await eventually(async () => {
            const now = await ready("fresh");
            return now.length === 1 && now[0]?.image === other && now[0]?.memberId !== old?.memberId;
          }, 90_000),
        ).toBe(true);
        if (options.rebuild) {
          // The same tag, rebuilt: its members run what it was, and are replaced too.
          const before = (await ready("fresh"))[0];
          await options.rebuild(other);
          expect(
            await eventually(async () => {
              const now = await ready("fresh");
              return now.length === 1 && now[0]?.memberId !== before?.memberId && now[0]?.imageId !== before?.imageId;
            }, 90_000),
          ).toBe(true);
        }
      },
      SUITE_TIMEOUT_MS + 60_000,
    );

    it(
      "backs off a pool whose image cannot start, leaving nothing of its attempts",
      async () => {
        await stopAll();
        const spawner = await start({
          SPAWNER_POOL_SIZE: "0",
          SPAWNER_PROFILES: JSON.stringify({ broken: { images: ["sbx-test-missing:latest"], pool: { size: 2 } } }),
        });
        await sleep(8000);
        const failed = await metric(spawner, 'sbx_pool_starts_total{profile="broken",outcome="failed"}');
        // Without a back-off, some fifty attempts in those seconds; with it, a handful.
        expect(failed).toBeGreaterThanOrEqual(2);
        expect(failed).toBeLessThanOrEqual(12);
        expect(await eventually(async () => (await options.members(spawner.deployment)).length === 0, 60_000)).toBe(
          true,
        );
        // A create of that profile says why, as a cold create would.
        const made = await create(spawner, { id: "broken-1", profile: "broken" });
        expect(made.status).toBe(502);
        expect(ErrorEnvelopeSchema.parse(made.body).error.code).toBe("IMAGE_UNAVAILABLE");
      },
      SUITE_TIMEOUT_MS,
    );

    it(
      "a replica that dies holding a pool lock holds up that pool only for the lock's short lifetime",
      async (context) => {
        if (options.backend !== "kubernetes") {
          const why = `${options.backend} cannot renew a lock in place, so its locks live a whole create timeout`;
          console.warn(`SKIPPING the dead-lock-holder test: ${why}`);
          context.skip(why);
          return;
        }
        await stopAll();
        const env = {
          SPAWNER_POOL_SIZE: "0",
          SPAWNER_PROFILES: JSON.stringify({ orphan: { images: ["sbx-runtime:latest"], pool: { size: 1 } } }),
        };
        const took = (s: SpawnerHandle) => s.logs().includes(`"lock":"pool-orphan","msg":"took a pool lock"`);
        const doomed = await start(env);
        expect(await eventually(async () => took(doomed), 60_000)).toBe(true);
        await doomed.kill();
        const diedAt = Date.now();
        const next = await start(env);
        // The dead replica's lock expires within its 15 s lifetime (it is no longer renewed).
        expect(await eventually(async () => took(next), 40_000)).toBe(true);
        expect(Date.now() - diedAt).toBeLessThan(30_000); // not the 90 s an unrenewed lock lives here
        expect(await poolFilled(1, "orphan")).toBe(true);
      },
      SUITE_TIMEOUT_MS,
    );

    it(
      "gives its pool lock back when stopped in the middle of filling, so the next replica fills at once",
      async () => {
        await stopAll();
        for (let round = 0; round < 3; round++) {
          // A pool of its own each round: the replica has a member to start when it is stopped.
          const spawner = await start({
            SPAWNER_POOL_SIZE: "0",
            SPAWNER_PROFILES: JSON.stringify({
              [`churn${round}`]: { images: ["sbx-runtime:latest"], pool: { size: 1 } },
            }),
          });
          const took = () => spawner.logs().includes(`"lock":"pool-churn${round}","msg":"took a pool lock"`);
          expect(await eventually(async () => took(), 60_000)).toBe(true);
          await stopAll();
          const locks = (await options.leftovers(spawner.deployment)).filter((name) => name.includes("-lock-"));
          if (locks.length > 0) process.stderr.write(await poolStory());
          expect(locks).toEqual([]);
        }
        // The next test's replica: it empties the pools left behind.
        await start({ SPAWNER_POOL_SIZE: "0" });
      },
      SUITE_TIMEOUT_MS,
    );

    it(
      "leaves nothing once its sessions are deleted and its pools emptied",
      async () => {
        const spawner = running[0];
        if (!spawner) throw new Error("no spawner");
        const left = SessionListResponseSchema.parse((await spawner.json("GET", "/v1/sessions")).body).sessions;
        for (const s of left) expect((await spawner.request("DELETE", `/v1/sessions/${s.id}`)).status).toBe(204);
        expect(
          await eventually(async () => (await options.leftovers(spawner.deployment)).length === 0, 90_000),
          (await options.leftovers(spawner.deployment)).join(", "),
        ).toBe(true);
      },
      SUITE_TIMEOUT_MS,
    );
  });
}
