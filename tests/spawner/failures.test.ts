import { ErrorEnvelopeSchema, SessionResponseSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildMisbehavingImage,
  docker,
  dockerUnavailable,
  leftovers,
  MISSING_IMAGE,
  removeDeployment,
} from "../support/docker.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";
import { type SpawnerHandle, startSpawner } from "../support/spawner.js";

const skip = skipUnlessPlatform("Docker", await dockerUnavailable(), "spawner failure tests");

const CREATE_TIMEOUT_MS = 3000;

describe("failed creates leave nothing behind", skippedBecause(skip), () => {
  let spawner: SpawnerHandle;
  let SILENT_IMAGE: string;
  let QUITTING_IMAGE: string;
  let DYING_IMAGE: string;

  beforeAll(async () => {
    SILENT_IMAGE = await buildMisbehavingImage("silent");
    QUITTING_IMAGE = await buildMisbehavingImage("quitting");
    DYING_IMAGE = await buildMisbehavingImage("dying");
    spawner = await startSpawner({
      env: {
        SPAWNER_CREATE_TIMEOUT_MS: String(CREATE_TIMEOUT_MS),
        SPAWNER_MAX_SESSIONS: "2",
        SPAWNER_MAX_SESSIONS_PER_ORG: "1",
        SPAWNER_PROFILES: JSON.stringify({
          broken: { images: [SILENT_IMAGE, QUITTING_IMAGE, DYING_IMAGE, MISSING_IMAGE] },
        }),
      },
    });
  });
  afterAll(async () => {
    await spawner?.stop();
    if (spawner) await removeDeployment(spawner.deployment);
    for (const tag of [SILENT_IMAGE, QUITTING_IMAGE, DYING_IMAGE]) {
      if (tag) await docker("rmi", "-f", tag).catch(() => "");
    }
  });

  async function expectNothingLeft() {
    expect(await leftovers(spawner.deployment)).toMatchObject({ containers: [], volumes: [] });
  }

  it("answers an allowed but missing image with 502 IMAGE_UNAVAILABLE", async () => {
    const result = await spawner.json("POST", "/v1/sessions", { org: "o1", profile: "broken", image: MISSING_IMAGE });
    expect(result.status).toBe(502);
    expect(ErrorEnvelopeSchema.parse(result.body).error).toMatchObject({ code: "IMAGE_UNAVAILABLE" });
    await expectNothingLeft();
  });

  it("gives up on a runnerd that never answers at the create deadline with 504", async () => {
    const started = Date.now();
    const result = await spawner.json("POST", "/v1/sessions", { org: "o1", profile: "broken", image: SILENT_IMAGE });
    expect(result.status).toBe(504);
    expect(ErrorEnvelopeSchema.parse(result.body).error.code).toBe("RUNNERD_NOT_READY");
    // It waits out the whole deadline, and then stops waiting (teardown adds a little).
    expect(Date.now() - started).toBeGreaterThanOrEqual(CREATE_TIMEOUT_MS);
    expect(Date.now() - started).toBeLessThan(CREATE_TIMEOUT_MS + 10_000);
    await expectNothingLeft();
  });

  it.each([
    ["at once", () => QUITTING_IMAGE],
    ["a second after it started", () => DYING_IMAGE],
  ])(
    "fails before the deadline, not at it, with the exit as its reason, when the container stops by itself %s",
    async (_when, image) => {
      const started = Date.now();
      const result = await spawner.json("POST", "/v1/sessions", { org: "o1", profile: "broken", image: image() });
      expect(result.status).toBe(502);
      const error = ErrorEnvelopeSchema.parse(result.body).error;
      expect(error).toMatchObject({ code: "SESSION_START_FAILED", details: { reason: { code: "exited" } } });
      expect(error.message).toMatch(/exited with code \d/);
      expect(Date.now() - started).toBeLessThan(CREATE_TIMEOUT_MS);
      await expectNothingLeft();
    },
  );

  it("makes one session of concurrent creates of one id, and answers all of them with it", async () => {
    const request = { id: "racer", org: "race" };
    const results = await Promise.all(Array.from({ length: 6 }, () => spawner.json("POST", "/v1/sessions", request)));
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 200, 200, 201]);
    const createdAt = new Set(results.map((r) => SessionResponseSchema.parse(r.body).session.createdAt));
    expect(createdAt.size).toBe(1);
    const left = await leftovers(spawner.deployment);
    expect(left.containers).toHaveLength(1);
    expect(left.volumes).toHaveLength(1);
  });

  it("makes one session of concurrent creates through two replicas", async () => {
    const second = await startSpawner({
      deployment: spawner.deployment,
      secrets: { secret: spawner.secret, runnerdSecret: spawner.runnerdSecret },
      env: { SPAWNER_MAX_SESSIONS: "2", SPAWNER_MAX_SESSIONS_PER_ORG: "1" },
    });
    try {
      const request = { id: "twin", org: "twins" };
      const results = await Promise.all([
        spawner.json("POST", "/v1/sessions", request),
        second.json("POST", "/v1/sessions", request),
        spawner.json("POST", "/v1/sessions", request),
        second.json("POST", "/v1/sessions", request),
      ]);
      // On a failure, show what the others were told, not just how many there were.
      expect(results.map((r) => [r.status, r.status >= 300 ? r.body : "ok"]).sort()).toEqual([
        [200, "ok"],
        [200, "ok"],
        [200, "ok"],
        [201, "ok"],
      ]);
      const left = await leftovers(spawner.deployment);
      expect(left.containers).toHaveLength(2);
      // Either replica serves it: the second one looks it up on a cache miss.
      const viaSecond = await second.json("POST", "/v1/sessions/racer/execs?wait=true", { argv: ["echo", "ok"] });
      expect(viaSecond.body).toMatchObject({ stdout: "ok\n" });
    } finally {
      await second.stop();
    }
  });

  it("answers capacity exhaustion with 429 and Retry-After, globally and per org", async () => {
    expect((await spawner.request("DELETE", "/v1/sessions/twin")).status).toBe(204);
    const perOrg = await spawner.json("POST", "/v1/sessions", { org: "race" });
    expect(perOrg.status).toBe(429);
    expect(perOrg.headers.get("retry-after")).toBe("30");
    expect(ErrorEnvelopeSchema.parse(perOrg.body).error).toMatchObject({
      code: "CAPACITY_EXCEEDED",
      details: { scope: "org" },
    });
    expect((await spawner.json("POST", "/v1/sessions", { id: "second", org: "other" })).status).toBe(201);
    const global = await spawner.json("POST", "/v1/sessions", { org: "someone-new" });
    expect(global.status).toBe(429);
    expect(ErrorEnvelopeSchema.parse(global.body).error).toMatchObject({ details: { scope: "global" } });
    expect((await leftovers(spawner.deployment)).containers).toHaveLength(2);
  });

  it("creates again once a session is deleted", async () => {
    expect((await spawner.request("DELETE", "/v1/sessions/racer")).status).toBe(204);
    const fresh = await spawner.json("POST", "/v1/sessions", { org: "race" });
    expect(fresh.status).toBe(201);
  });

  it("explains a session call that cannot reach runnerd: unreachable is 502, killed is 410, never a bare 502", async () => {
    expect((await spawner.request("DELETE", "/v1/sessions/second")).status).toBe(204);
    const created = await spawner.json("POST", "/v1/sessions", { id: "cut", org: "cut" });
    expect(created.status).toBe(201);
    const name = `sbx-${spawner.deployment}-cut`;
    // Past the create deadline, a running container whose runnerd cannot be reached is a 502.
    await new Promise((r) => setTimeout(r, 3100));
    await docker("network", "disconnect", "-f", `sbx-${spawner.deployment}`, name);
    const unreachable = await spawner.request("POST", "/v1/sessions/cut/execs?wait=true", {
      body: JSON.stringify({ argv: ["true"] }),
    });
    expect(unreachable.status).toBe(502);
    expect(unreachable.headers.get("content-type")).toMatch(/^application\/json/);
    expect(ErrorEnvelopeSchema.parse(await unreachable.json()).error.code).toBe("RUNNERD_UNREACHABLE");
    await docker("kill", name);
    const stopped = await spawner.json("GET", "/v1/sessions/cut/execs");
    expect(stopped.status).toBe(410);
    expect(ErrorEnvelopeSchema.parse(stopped.body).error).toMatchObject({
      code: "SESSION_FAILED",
      details: { reason: { code: "exited" } },
    });
    expect((await spawner.request("DELETE", "/v1/sessions/cut")).status).toBe(204);
  });
});
