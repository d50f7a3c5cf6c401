import { SessionResponseSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerUnavailable, leftovers, removeDeployment } from "../support/docker.js";
import { eventually, sleep } from "../support/proc.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";
import { type SpawnerHandle, startSpawner } from "../support/spawner.js";
import { exitOf, readEvents, textOf } from "../support/sse.js";

const skip = skipUnlessPlatform("Docker", await dockerUnavailable(), "sweeper and adoption tests");

describe("sweeper", skippedBecause(skip), () => {
  let spawner: SpawnerHandle;

  beforeAll(async () => {
    // Idle sessions deleted, not stopped: stopping is tested in stop-resume.test.ts.
    spawner = await startSpawner({ env: { SPAWNER_SWEEP_INTERVAL_MS: "250", SPAWNER_IDLE_ACTION: "delete" } });
  });
  afterAll(async () => {
    await spawner?.stop();
    if (spawner) await removeDeployment(spawner.deployment);
  });

  const exists = async (id: string) => (await spawner.json("GET", `/v1/sessions/${id}`)).status === 200;

  it("ends a session at its TTL, unless its lifetime was extended", async () => {
    await spawner.json("POST", "/v1/sessions", { id: "short", org: "o", ttlMs: 2000 });
    await spawner.json("POST", "/v1/sessions", { id: "extended", org: "o", ttlMs: 2000 });
    expect((await spawner.json("PATCH", "/v1/sessions/extended", { ttlMs: 120_000 })).status).toBe(200);
    expect(await eventually(async () => !(await exists("short")), 10_000)).toBe(true);
    expect(await exists("extended")).toBe(true);
    expect(spawner.logs()).toMatch(/"sessionId":"short","reason":"ttl","msg":"session reaped"/);
  });

  it("ends an idle session, but not one with a live exec, however quiet", async () => {
    await spawner.json("POST", "/v1/sessions", { id: "idle", org: "o", idleTimeoutMs: 1500 });
    await spawner.json("POST", "/v1/sessions", { id: "busy", org: "o", idleTimeoutMs: 1500 });
    const busy = await readEvents(
      await spawner.request("POST", "/v1/sessions/busy/execs", {
        body: JSON.stringify({ execId: "quiet", argv: ["sleep", "5"], orphanTimeoutMs: 60_000 }),
      }),
      (event) => event.type === "started",
    );
    expect(busy.events).toHaveLength(1);
    expect(await eventually(async () => !(await exists("idle")), 10_000)).toBe(true);
    expect(await exists("busy")).toBe(true);
    // Once the exec has ended, nothing keeps it alive.
    expect(await eventually(async () => !(await exists("busy")), 15_000)).toBe(true);
    expect(spawner.logs()).toMatch(/"sessionId":"busy","reason":"idle"/);
  });

  it("leaves nothing behind after reaping", async () => {
    await spawner.request("DELETE", "/v1/sessions/extended");
    expect(await leftovers(spawner.deployment)).toMatchObject({ containers: [], volumes: [] });
  });
});

describe("adoption", skippedBecause(skip), () => {
  let first: SpawnerHandle;
  let second: SpawnerHandle | undefined;

  beforeAll(async () => {
    first = await startSpawner();
  });
  afterAll(async () => {
    await first?.stop();
    await second?.stop();
    if (first) await removeDeployment(first.deployment);
  });

  it("loses nothing when the spawner dies mid-stream: a new one re-adopts the session, lifetimes intact", async () => {
    await first.json("POST", "/v1/sessions", { id: "kept", org: "o", ttlMs: 600_000, idleTimeoutMs: 300_000 });
    const patched = SessionResponseSchema.parse(
      (await first.json("PATCH", "/v1/sessions/kept", { ttlMs: 900_000, idleTimeoutMs: 400_000 })).body,
    ).session;
    const stream = readEvents(
      await first.request("POST", "/v1/sessions/kept/execs", {
        body: JSON.stringify({ execId: "long", shell: "for i in $(seq 1 40); do echo tick $i; sleep 0.05; done" }),
      }),
    );
    await sleep(500);
    await first.kill();
    const cut = await stream;
    expect(cut.end).not.toBe("closed");
    const lastId = cut.events.at(-1)?.seq ?? 0;

    second = await startSpawner({
      deployment: first.deployment,
      secrets: { secret: first.secret, runnerdSecret: first.runnerdSecret },
    });
    expect(second.logs()).toMatch(/"adopted":1/);
    const resumed = await readEvents(
      await second.request("GET", "/v1/sessions/kept/execs/long/events", {
        headers: { "last-event-id": String(lastId) },
      }),
    );
    const all = [...cut.events, ...resumed.events];
    expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
    expect(textOf(all).trim().split("\n")).toEqual(Array.from({ length: 40 }, (_, i) => `tick ${i + 1}`));
    expect(exitOf(all).outcome).toBe("completed");

    const adopted = SessionResponseSchema.parse((await second.json("GET", "/v1/sessions/kept")).body).session;
    expect(adopted).toMatchObject({
      createdAt: patched.createdAt,
      expiresAt: patched.expiresAt,
      idleTimeoutMs: 400_000,
      org: "o",
      state: "ready",
    });
  });
});
