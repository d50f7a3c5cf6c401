import {
  EnvNamesResponseSchema,
  ExecInfoSchema,
  ExecResultSchema,
  type Session,
  SessionResponseSchema,
} from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { eventually } from "./proc.js";
import { skippedBecause } from "./skips.js";
import type { SpawnerHandle } from "./spawner.js";
import { exitOf, readEvents, textOf } from "./sse.js";

export interface StopResumeOptions {
  backend: "docker" | "kubernetes";
  /** Why the suite cannot run here (it is then skipped and says so). */
  skip: string | undefined;
  start(env: Record<string, string>): Promise<SpawnerHandle>;
  /** Extra fields of a create that make a stoppable session (a profile with a persistent workspace). */
  stoppable: Record<string, unknown>;
  /**
   * The sbx labels and annotations of each platform object of a session (its container and
   * volumes, or its Pod and PVC), by object name: the truth the spawner wrote.
   */
  platformTruth(deployment: string, id: string): Promise<Record<string, Record<string, string>>>;
  /** Names of every object the deployment still owns. */
  leftovers(deployment: string): Promise<string[]>;
  cleanup(deployment: string): Promise<void>;
}

/**
 * Sessions that sleep and wake, through a real spawner on a real backend:
 * stop and resume with files, env, lease and exec records intact; re-attach
 * across a resume; a running exec ends `interrupted`; a call resumes a
 * stopped session by itself; idleness stops, TTL still deletes.
 */
export function runStopResumeSuite(options: StopResumeOptions): void {
  describe(`stop and resume (${options.backend})`, skippedBecause(options.skip), () => {
    let spawner: SpawnerHandle;

    beforeAll(async () => {
      spawner = await options.start({ SPAWNER_SWEEP_INTERVAL_MS: "500" });
    });
    afterAll(async () => {
      await spawner?.stop();
      if (spawner) await options.cleanup(spawner.deployment);
    });

    const create = async (id: string, extra: Record<string, unknown> = {}) => {
      const created = await spawner.json("POST", "/v1/sessions", { id, org: "sleep", ...options.stoppable, ...extra });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      return SessionResponseSchema.parse(created.body).session;
    };
    const session = async (id: string): Promise<Session | undefined> => {
      const got = await spawner.json("GET", `/v1/sessions/${id}`);
      return got.status === 200 ? SessionResponseSchema.parse(got.body).session : undefined;
    };
    const act = async (id: string, action: "stop" | "resume") => {
      const result = await spawner.json("POST", `/v1/sessions/${id}/${action}`);
      expect(result.status, JSON.stringify(result.body)).toBe(200);
      return SessionResponseSchema.parse(result.body).session;
    };

    it("keeps files, env, lease and exec records across a stop and a resume; a running exec ends interrupted", async () => {
      const id = "sleepy";
      expect((await create(id, { env: { KEPT: "yes" } })).stoppable).toBe(true);
      const base = `/v1/sessions/${id}`;
      await spawner.request("PUT", `${base}/files/content?path=notes/kept.txt`, {
        body: "written before",
        unsigned: true,
      });
      const patched = SessionResponseSchema.parse(
        (await spawner.json("PATCH", base, { ttlMs: 7_200_000, idleTimeoutMs: 900_000 })).body,
      ).session;
      const done = await spawner.json("POST", `${base}/execs?wait=true`, {
        execId: "done",
        shell: "for i in $(seq 1 20); do echo done $i; done",
      });
      expect(done.status).toBe(200);
      const ticker = await readEvents(
        await spawner.request("POST", `${base}/execs`, {
          body: JSON.stringify({
            execId: "ticker",
            shell: "for i in $(seq 1 2000); do echo tick $i; sleep 0.05; done",
          }),
        }),
        (event) => event.seq >= 5,
      );
      const seen = ticker.events.at(-1)?.seq ?? 0;

      const stopped = await act(id, "stop");
      expect(stopped).toMatchObject({ state: "stopped", expiresAt: patched.expiresAt, idleTimeoutMs: 900_000 });
      expect(stopped.stoppedAt).toBeGreaterThan(0);
      expect(await session(id)).toMatchObject({ state: "stopped", expiresAt: patched.expiresAt });

      const resumed = await act(id, "resume");
      expect(resumed).toMatchObject({ state: "ready", stoppedAt: null, expiresAt: patched.expiresAt });
      expect(await (await spawner.request("GET", `${base}/files/content?path=notes/kept.txt`)).text()).toBe(
        "written before",
      );
      expect(EnvNamesResponseSchema.parse((await spawner.json("GET", `${base}/env`)).body).names).toEqual(["KEPT"]);
      const replay = await readEvents(await spawner.request("GET", `${base}/execs/done/events`));
      expect(textOf(replay.events).trim().split("\n")).toHaveLength(20);
      expect(exitOf(replay.events).outcome).toBe("completed");
      // Re-attach where the connection left off: the rest of what it printed, then its end.
      const rest = await readEvents(
        await spawner.request("GET", `${base}/execs/ticker/events`, { headers: { "last-event-id": String(seen) } }),
      );
      expect(rest.events[0]?.seq).toBe(seen + 1);
      expect(exitOf(rest.events).outcome).toBe("interrupted");
      expect(ExecInfoSchema.parse((await spawner.json("GET", `${base}/execs/ticker`)).body).outcome).toBe(
        "interrupted",
      );
    });

    it("keeps its lifetime and labels whatever an exec writes under .sbx/ before a stop and resume", async () => {
      const id = "tamper";
      await create(id, { ttlMs: 600_000, idleTimeoutMs: 120_000, labels: { team: "a" } });
      onTestFinished(async () => {
        await spawner.request("DELETE", `/v1/sessions/${id}`);
      });
      const base = `/v1/sessions/${id}`;
      // A lease set after the create, so both the created and the changed lifetime are at stake.
      expect((await spawner.json("PATCH", base, { ttlMs: 900_000 })).status).toBe(200);
      expect((await spawner.json("POST", `${base}/execs?wait=true`, { execId: "before", argv: ["true"] })).status).toBe(
        200,
      );
      const before = await session(id);
      const truthBefore = await options.platformTruth(spawner.deployment, id);
      expect(Object.keys(truthBefore).length).toBeGreaterThan(0);
      // Every file runnerd keeps, and the lease file an older runnerd read at start, made to say
      // "this session lives for ever and is never idle".
      const forged = JSON.stringify({
        lease: { expiresAt: 9_999_999_999_999, idleTimeoutMs: 999_999_999 },
        expiresAt: 9_999_999_999_999,
        idleTimeoutMs: 999_999_999,
        labels: { team: "b" },
      });
      const files = "lease.json status.json env.json execs.jsonl requests.json";
      const tamper = await spawner.json("POST", `${base}/execs?wait=true`, {
        shell: `cd /workspace/.sbx && (cd runnerd && touch ${files}) && for f in $(find . -type f); do printf %s "$FORGED" > "$f"; done && find . -type f | wc -l`,
        env: { FORGED: forged },
      });
      expect(tamper.body).toMatchObject({ exitCode: 0 });
      expect(Number(ExecResultSchema.parse(tamper.body).stdout.trim())).toBeGreaterThanOrEqual(6);

      await act(id, "stop");
      await act(id, "resume");
      const after = await session(id);
      expect(after).toMatchObject({
        state: "ready",
        createdAt: before?.createdAt,
        expiresAt: before?.expiresAt,
        idleTimeoutMs: 120_000,
        labels: { team: "a" },
      });
      expect(after?.lastActivityAt ?? 0).toBeLessThanOrEqual(Date.now());
      expect(await options.platformTruth(spawner.deployment, id)).toEqual(truthBefore);
    });

    it("resumes a stopped session by itself when a call reaches it", async () => {
      await act("sleepy", "stop");
      const call = await spawner.json("POST", "/v1/sessions/sleepy/execs?wait=true", {
        argv: ["cat", "notes/kept.txt"],
      });
      expect(call.status).toBe(200);
      expect(call.body).toMatchObject({ stdout: "written before" });
      expect((await session("sleepy"))?.state).toBe("ready");
    });

    it("wakes a stopped session for 20 calls at once, each answered, round after round", async () => {
      for (let round = 0; round < 3; round++) {
        await act("sleepy", "stop");
        // Execs and reads mixed (a session runs at most 16 execs at once on its default memory).
        const calls = await Promise.all(
          Array.from({ length: 20 }, (_, i) =>
            i % 2 === 0
              ? spawner.json("POST", "/v1/sessions/sleepy/execs?wait=true", { argv: ["echo", `call ${round}.${i}`] })
              : spawner.json("GET", "/v1/sessions/sleepy/files/stat?path=notes/kept.txt"),
          ),
        );
        expect(
          calls.map((c) => c.status),
          JSON.stringify(calls.filter((c) => c.status !== 200).map((c) => c.body)),
        ).toEqual(Array(20).fill(200));
        calls.forEach((c, i) => {
          if (i % 2 === 0) expect(c.body).toMatchObject({ stdout: `call ${round}.${i}\n` });
        });
      }
    });

    it("stops an idle session by itself", async () => {
      await create("dozy", { idleTimeoutMs: 2000 });
      expect(await eventually(async () => (await session("dozy"))?.state === "stopped", 30_000)).toBe(true);
    });

    it("deletes a stopped session at its TTL, leaving nothing", async () => {
      await create("brief", { ttlMs: 8000 });
      await act("brief", "stop");
      expect(await eventually(async () => (await session("brief")) === undefined, 60_000)).toBe(true);
    });

    it("deletes stopped sessions and everything they kept", async () => {
      for (const id of ["sleepy", "dozy"]) {
        await act(id, "stop").catch(() => undefined);
        expect((await spawner.request("DELETE", `/v1/sessions/${id}`)).status).toBe(204);
      }
      expect(await eventually(async () => (await options.leftovers(spawner.deployment)).length === 0, 60_000)).toBe(
        true,
      );
    });
  });
}
