import type { ServerResponse } from "node:http";
import { setTimeout as delay } from "node:timers/promises";
import { ErrorEnvelopeSchema, type Session, SessionResponseSchema } from "@sbx/protocol";
import {
  type InProcessSpawner,
  ManualClock,
  type MemoryBackendOptions,
  startInProcessSpawner,
} from "@sbx/spawner/testing";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";

const started: InProcessSpawner[] = [];
afterEach(async () => {
  for (const s of started.splice(0)) {
    await s.close();
    await s.backend.close();
  }
});

async function spawner(
  env: Record<string, string> = {},
  backend?: MemoryBackendOptions,
  clock?: ManualClock,
): Promise<InProcessSpawner> {
  const s = await startInProcessSpawner({ env, ...(backend ? { backend } : {}), ...(clock ? { clock } : {}) });
  started.push(s);
  return s;
}

const sessionOf = (body: unknown): Session => SessionResponseSchema.parse(body).session;
const errorOf = (body: unknown) => ErrorEnvelopeSchema.parse(body).error;

/** Reads an event stream until it ends; resolves with what arrived and whether it ended or broke. */
async function follow(response: Response): Promise<{ text: string; ended: "closed" | "broken" }> {
  const reader = response.body?.getReader();
  if (!reader) throw new Error("no body");
  let text = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { text, ended: "closed" };
      text += Buffer.from(value).toString();
    }
  } catch {
    return { text, ended: "broken" };
  }
}

describe("creating sessions", () => {
  it("makes a session once per id and spec: 201, then 200 for the same spec, 409 for another", async () => {
    const s = await spawner();
    const first = await s.json("POST", "/v1/sessions", { id: "once", org: "acme", labels: { team: "core" } });
    expect(first.status).toBe(201);
    expect(sessionOf(first.body)).toMatchObject({ id: "once", state: "ready", reason: null, labels: { team: "core" } });
    const again = await s.json("POST", "/v1/sessions", { id: "once", org: "acme", labels: { team: "core" } });
    expect(again.status).toBe(200);
    const other = await s.json("POST", "/v1/sessions", { id: "once", org: "acme", labels: { team: "edge" } });
    expect(other.status).toBe(409);
    expect(errorOf(other.body).code).toBe("SESSION_CONFLICT");
    expect(await s.backend.list()).toHaveLength(1);
  });

  it("makes one session of concurrent creates of one id, through one replica and through two", async () => {
    const a = await spawner({}, { startDelayMs: 100 });
    const b = await startInProcessSpawner({ backend: a.backend });
    started.push(b);
    const request = { id: "race", org: "acme" };
    const results = await Promise.all([
      a.json("POST", "/v1/sessions", request),
      a.json("POST", "/v1/sessions", request),
      b.json("POST", "/v1/sessions", request),
      b.json("POST", "/v1/sessions", request),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 200, 201]);
    expect(await a.backend.list()).toHaveLength(1);
  });

  it("hands the session env to runnerd after start and never puts it in the backend's objects", async () => {
    const s = await spawner();
    const created = await s.json("POST", "/v1/sessions", { id: "env", org: "acme", env: { API_KEY: "s3cr3t-value" } });
    expect(created.status).toBe(201);
    expect(s.backend.runnerd("env").envNames()).toEqual(["API_KEY"]);
    expect(JSON.stringify(await s.backend.list())).not.toContain("s3cr3t-value");
    expect(s.logs()).not.toContain("s3cr3t-value");
  });

  it("refuses past capacity with 429 and Retry-After, and failed sessions do not count", async () => {
    const s = await spawner({ SPAWNER_MAX_SESSIONS_PER_ORG: "1" });
    expect((await s.json("POST", "/v1/sessions", { id: "first", org: "small" })).status).toBe(201);
    const refused = await s.request("POST", "/v1/sessions", { body: JSON.stringify({ id: "second", org: "small" }) });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).toBe("30");
    expect(errorOf(await refused.json()).code).toBe("CAPACITY_EXCEEDED");
    await s.backend.fail("first", { code: "oom-killed", message: "out of memory", exitCode: 137, at: Date.now() });
    expect((await s.json("POST", "/v1/sessions", { id: "second", org: "small" })).status).toBe(201);
  });

  it.each([
    ["a missing image", "sbx-missing:1", 502, "IMAGE_UNAVAILABLE"],
    ["a container that quits", "sbx-quits:1", 502, "SESSION_START_FAILED"],
    ["a runnerd that never answers, at the deadline", "sbx-silent:1", 504, "RUNNERD_NOT_READY"],
  ])("answers %s with its own code and leaves nothing behind", async (_what, image, status, code) => {
    const s = await spawner(
      {
        SPAWNER_CREATE_TIMEOUT_MS: "1000",
        SPAWNER_PROFILES: JSON.stringify({ odd: { images: ["sbx-missing:1", "sbx-quits:1", "sbx-silent:1"] } }),
      },
      { quittingImages: ["sbx-quits:1"], silentImages: ["sbx-silent:1"] },
    );
    const result = await s.json("POST", "/v1/sessions", { id: "bad", org: "acme", profile: "odd", image });
    expect(result.status).toBe(status);
    expect(errorOf(result.body).code).toBe(code);
    if (code === "SESSION_START_FAILED") {
      expect(errorOf(result.body).details).toMatchObject({ reason: { code: "exited", exitCode: 1 } });
    }
    expect(await s.backend.owned()).toEqual([]);
  });

  it("answers a create that races a delete with 409, never 503", async () => {
    const s = await spawner({}, { startDelayMs: 300 });
    const creating = s.json("POST", "/v1/sessions", { id: "raced", org: "acme" });
    await delay(100);
    expect((await s.json("DELETE", "/v1/sessions/raced")).status).toBe(204);
    const result = await creating;
    expect(result.status).toBe(409);
    expect(errorOf(result.body).code).toBe("SESSION_CONFLICT");
    expect(await s.backend.owned()).toEqual([]);
  });

  it("answers 503 BACKEND_UNAVAILABLE while the platform is down, and recovers without a restart", async () => {
    const s = await spawner();
    s.backend.setReachable(false);
    const down = await s.request("GET", "/v1/sessions");
    expect(down.status).toBe(503);
    expect(errorOf(await down.json()).code).toBe("BACKEND_UNAVAILABLE");
    expect((await fetch(`${s.url}/readyz`)).status).toBe(503);
    s.backend.setReachable(true);
    expect((await s.json("GET", "/v1/sessions")).status).toBe(200);
    expect((await fetch(`${s.url}/readyz`)).status).toBe(200);
  });
});

describe("dead sessions", () => {
  const oom = { code: "oom-killed" as const, message: "killed for running out of memory", exitCode: 137, at: 1 };

  it("shows a dead session as failed with its reason, and answers every call with 410 at once", async () => {
    const s = await spawner();
    await s.json("POST", "/v1/sessions", { id: "dies", org: "acme" });
    await s.backend.fail("dies", oom);
    const got = await s.json("GET", "/v1/sessions/dies");
    expect(sessionOf(got.body)).toMatchObject({ state: "failed", reason: { code: "oom-killed", exitCode: 137 } });
    for (const [method, path, body] of [
      ["POST", "/v1/sessions/dies/execs", { argv: ["true"] }],
      ["GET", "/v1/sessions/dies/execs/x/events", undefined],
      ["PATCH", "/v1/sessions/dies/env", { set: { A: "1" } }],
      ["GET", "/v1/sessions/dies/files/list?path=.", undefined],
      ["PATCH", "/v1/sessions/dies", { ttlMs: 60_000 }],
    ] as const) {
      const before = performance.now();
      const result = await s.json(method, path, body);
      expect(performance.now() - before).toBeLessThan(1000);
      expect(result.status).toBe(410);
      expect(errorOf(result.body)).toMatchObject({
        code: "SESSION_FAILED",
        details: { reason: { code: "oom-killed" } },
      });
    }
    // Creating it again with the same spec says the same, rather than pretending it is fine.
    expect((await s.json("POST", "/v1/sessions", { id: "dies", org: "acme" })).status).toBe(410);
  });

  it("ends attached streams when the backend reports the death, even if the address never answers again", async () => {
    const s = await spawner();
    await s.json("POST", "/v1/sessions", { id: "silent", org: "acme" });
    const response = await s.request("POST", "/v1/sessions/silent/execs", {
      body: JSON.stringify({ execId: "long", argv: ["sleep", "600"] }),
    });
    expect(response.status).toBe(200);
    const stream = follow(response);
    await delay(100);
    const killedAt = performance.now();
    await s.backend.fail("silent", oom, { silent: true });
    const { text, ended } = await stream;
    expect(performance.now() - killedAt).toBeLessThan(1000);
    expect(ended).toBe("broken");
    expect(text).toContain("event: started");
    expect(s.logs()).toMatch(/ended the streams of a lost session/);
  });

  it("answers every read that was waiting on runnerd at the moment of the death with the death, at once", async () => {
    const s = await spawner();
    await s.json("POST", "/v1/sessions", { id: "moment", org: "acme" });
    await s.json("POST", "/v1/sessions", { id: "bystander", org: "acme" });
    // Kept-alive connections to its runnerd exist, as they would after earlier calls.
    expect((await s.json("GET", "/v1/sessions/moment/execs")).status).toBe(200);
    // The container is gone (its address answers nothing, not even a reset); the platform has not said so yet.
    s.backend.runnerd("moment").freeze();
    const reads = [
      "/v1/sessions/moment",
      "/v1/sessions?org=acme",
      "/v1/sessions/moment/execs",
      "/v1/sessions/moment/execs/x",
      "/v1/sessions/moment/env",
      "/v1/sessions/moment/files/list?path=.",
      "/v1/sessions/moment/files/stat?path=.",
    ].map((path) => s.json("GET", path).then((result) => ({ path, result, at: performance.now() })));
    await delay(150);
    const toldAt = performance.now();
    await s.backend.fail("moment", oom, { silent: true });
    for (const { path, result, at } of await Promise.all(reads)) {
      expect(at - toldAt, path).toBeLessThan(500);
      if (path === "/v1/sessions/moment") expect(sessionOf(result.body)).toMatchObject({ state: "failed" });
      else if (path.startsWith("/v1/sessions?")) {
        const listed = z
          .object({ sessions: z.array(z.object({ id: z.string(), state: z.string() })) })
          .parse(result.body);
        expect(listed.sessions.find((x) => x.id === "moment")?.state, path).toBe("failed");
        expect(listed.sessions.find((x) => x.id === "bystander")?.state, path).toBe("ready");
      } else {
        expect([result.status, errorOf(result.body).code], path).toEqual([410, "SESSION_FAILED"]);
      }
    }
  });

  it("asks the backend again when runnerd cannot be reached, so a death the feed missed is still a 410", async () => {
    const s = await spawner();
    await s.json("POST", "/v1/sessions", { id: "unseen", org: "acme" });
    await s.backend.fail("unseen", oom, { quiet: true });
    const result = await s.json("POST", "/v1/sessions/unseen/execs", { argv: ["true"] });
    expect(result.status).toBe(410);
    expect(errorOf(result.body).code).toBe("SESSION_FAILED");
    expect(sessionOf((await s.json("GET", "/v1/sessions/unseen")).body).state).toBe("failed");
  });

  it("tells a session being deleted (410 SESSION_TERMINATING) from one that is gone (404)", async () => {
    const s = await spawner();
    await s.json("POST", "/v1/sessions", { id: "leaving", org: "acme" });
    s.backend.setState("leaving", { phase: "terminating" });
    expect(sessionOf((await s.json("GET", "/v1/sessions/leaving")).body).state).toBe("terminating");
    const call = await s.json("GET", "/v1/sessions/leaving/execs");
    expect([call.status, errorOf(call.body).code]).toEqual([410, "SESSION_TERMINATING"]);
    await s.backend.destroy("leaving");
    const gone = await s.json("GET", "/v1/sessions/leaving/execs");
    expect([gone.status, errorOf(gone.body).code]).toEqual([404, "SESSION_NOT_FOUND"]);
  });

  it("serves a session another replica made, and sees its death too", async () => {
    const a = await spawner();
    const b = await startInProcessSpawner({ backend: a.backend });
    started.push(b);
    await a.json("POST", "/v1/sessions", { id: "shared", org: "acme" });
    expect(sessionOf((await b.json("GET", "/v1/sessions/shared")).body).state).toBe("ready");
    await a.backend.fail("shared", oom);
    expect((await b.json("POST", "/v1/sessions/shared/execs", { argv: ["true"] })).status).toBe(410);
  });
});

describe("stopping and resuming", () => {
  it("stops a session and resumes it, keeping its env; a call to it resumes it by itself, once", async () => {
    const s = await spawner({}, { startDelayMs: 200 });
    await s.json("POST", "/v1/sessions", { id: "nap", org: "acme", env: { KEPT: "yes" } });
    const stopped = await s.json("POST", "/v1/sessions/nap/stop");
    expect(stopped.status).toBe(200);
    expect(sessionOf(stopped.body)).toMatchObject({ state: "stopped", stoppable: true });
    expect(sessionOf(stopped.body).stoppedAt).toBeGreaterThan(0);
    // Stopping again is harmless.
    expect(sessionOf((await s.json("POST", "/v1/sessions/nap/stop")).body).state).toBe("stopped");
    // Three calls at once wake it once, and all of them are served.
    const calls = await Promise.all([
      s.json("GET", "/v1/sessions/nap/execs"),
      s.json("GET", "/v1/sessions/nap/env"),
      s.json("POST", "/v1/sessions/nap/resume"),
    ]);
    expect(calls.map((c) => c.status)).toEqual([200, 200, 200]);
    expect(calls[1]?.body).toEqual({ names: ["KEPT"] });
    expect(sessionOf((await s.json("GET", "/v1/sessions/nap")).body)).toMatchObject({
      state: "ready",
      stoppedAt: null,
    });
    expect(s.logs().match(/"msg":"session resumed"/g)).toHaveLength(1);
  });

  it("refuses calls to a stopped session with 409 SESSION_STOPPED when resuming on demand is off", async () => {
    const s = await spawner({ SPAWNER_AUTO_RESUME: "0" });
    await s.json("POST", "/v1/sessions", { id: "asleep", org: "acme" });
    await s.json("POST", "/v1/sessions/asleep/stop");
    const call = await s.json("GET", "/v1/sessions/asleep/env");
    expect([call.status, errorOf(call.body).code]).toEqual([409, "SESSION_STOPPED"]);
    expect((await s.json("POST", "/v1/sessions/asleep/resume")).status).toBe(200);
    expect((await s.json("GET", "/v1/sessions/asleep/env")).status).toBe(200);
  });

  it("stops idle sessions instead of deleting them, and still deletes stopped ones at their TTL", async () => {
    const clock = new ManualClock();
    const s = await spawner({}, undefined, clock);
    await s.json("POST", "/v1/sessions", { id: "dozy", org: "acme", idleTimeoutMs: 1000, ttlMs: 2500 });
    await clock.advance(1100);
    expect(await s.spawner.sweeper.sweep()).toEqual([{ id: "dozy", reason: "idle", stopped: true }]);
    expect(sessionOf((await s.json("GET", "/v1/sessions/dozy")).body).state).toBe("stopped");
    // Asleep, it is not idle any more; its TTL still ends it.
    expect(await s.spawner.sweeper.sweep()).toEqual([]);
    await clock.advance(1500);
    expect(await s.spawner.sweeper.sweep()).toEqual([{ id: "dozy", reason: "ttl" }]);
    expect((await s.json("GET", "/v1/sessions/dozy")).status).toBe(404);
  });

  it("deletes idle sessions whose profile says so", async () => {
    const clock = new ManualClock();
    const s = await spawner({ SPAWNER_IDLE_ACTION: "delete" }, undefined, clock);
    await s.json("POST", "/v1/sessions", { id: "gone", org: "acme", idleTimeoutMs: 1000 });
    await clock.advance(1100);
    expect(await s.spawner.sweeper.sweep()).toEqual([{ id: "gone", reason: "idle" }]);
  });
});

describe("the sweeper", () => {
  it("removes a failed session only once its reason has been readable for the retention", async () => {
    const clock = new ManualClock();
    const s = await spawner({ SPAWNER_FAILED_RETENTION_MS: "400" }, undefined, clock);
    await s.json("POST", "/v1/sessions", { id: "kept", org: "acme" });
    await s.backend.fail("kept", { code: "exited", message: "exited with code 3", exitCode: 3, at: clock.now() });
    expect(await s.spawner.sweeper.sweep()).toEqual([]);
    expect(sessionOf((await s.json("GET", "/v1/sessions/kept")).body).state).toBe("failed");
    await clock.advance(500);
    expect(await s.spawner.sweeper.sweep()).toEqual([{ id: "kept", reason: "failed" }]);
    expect((await s.json("GET", "/v1/sessions/kept")).status).toBe(404);
  });

  it("ends a session at its TTL, stops an idle one, and keeps one that is busy", async () => {
    const clock = new ManualClock();
    const s = await spawner({}, undefined, clock);
    await s.json("POST", "/v1/sessions", { id: "brief", org: "acme", ttlMs: 1000 });
    await s.json("POST", "/v1/sessions", { id: "idle", org: "acme", idleTimeoutMs: 1000 });
    await s.json("POST", "/v1/sessions", { id: "busy", org: "acme", idleTimeoutMs: 1000 });
    const busy = await s.request("POST", "/v1/sessions/busy/execs", { body: JSON.stringify({ execId: "work" }) });
    const stream = follow(busy);
    await clock.advance(1100);
    const reaped = await s.spawner.sweeper.sweep();
    expect(reaped.sort((x, y) => x.id.localeCompare(y.id))).toEqual([
      { id: "brief", reason: "ttl" },
      { id: "idle", reason: "idle", stopped: true },
    ]);
    s.backend.runnerd("busy").finishExec("work");
    expect((await stream).text).toContain("event: exit");
  });
});

describe("the HTTP surface", () => {
  it("serves health, readiness and the API description unsigned, and nothing else", async () => {
    const s = await spawner();
    for (const path of ["/healthz", "/readyz", "/openapi.json"]) {
      expect((await fetch(`${s.url}${path}`)).status, path).toBe(200);
    }
    for (const path of ["/v1/sessions", "/v1/sessions/x", "/v1/sessions/x/execs", "/metrics", "/elsewhere"]) {
      const response = await fetch(`${s.url}${path}`);
      expect(response.status, path).toBe(401);
      expect(errorOf(await response.json()).code).toBe("SIGNATURE_MISSING");
    }
  });

  it("describes exactly the routes it serves in /openapi.json", async () => {
    const s = await spawner();
    const document = z
      .object({ paths: z.record(z.string(), z.record(z.string(), z.unknown())) })
      .parse(await (await fetch(`${s.url}/openapi.json`)).json());
    const described = Object.entries(document.paths)
      .flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    const served = s.spawner.app.routes
      // The gateway's grant lookup is internal, not the platform's API.
      .filter((r) => r.method !== "ALL" && r.path !== "/openapi.json" && !r.path.startsWith("/internal/"))
      .map((r) => `${r.method} ${r.path.replaceAll(/:(\w+)/g, "{$1}")}`)
      .sort();
    expect(described).toEqual(served);
    expect(described).toContain("POST /v1/sessions/{id}/execs");
    expect(described).toContain("GET /v1/sessions/{id}/execs/{execId}/events");
  });

  it("answers bad input with the error envelope and field paths", async () => {
    const s = await spawner();
    const bad = await s.json("POST", "/v1/sessions", { org: "acme", id: "Not_A_Label", ttlMs: "soon" });
    expect(bad.status).toBe(400);
    const error = errorOf(bad.body);
    expect(error.code).toBe("VALIDATION_FAILED");
    expect(JSON.stringify(error.details)).toMatch(/"path":"id"/);
    expect(JSON.stringify(error.details)).toMatch(/"path":"ttlMs"/);
    const badId = await s.json("GET", "/v1/sessions/UPPER");
    expect([badId.status, errorOf(badId.body).code]).toEqual([400, "VALIDATION_FAILED"]);
  });
});

describe("what a session's runnerd says (session-controlled input)", () => {
  const statusOf = (fields: Record<string, unknown>) => (res: ServerResponse) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(
      JSON.stringify({ version: "x", incarnation: "y", bootedAt: 0, lastActivityAt: 0, liveExecs: 0, ...fields }),
    );
  };

  it("never takes a lifetime from runnerd, and holds its activity clock to the past", async () => {
    const s = await spawner();
    const created = sessionOf((await s.json("POST", "/v1/sessions", { id: "liar", org: "acme", ttlMs: 60_000 })).body);
    s.backend.runnerd("liar").answer(
      "GET /v1/status",
      statusOf({
        lastActivityAt: Date.now() + 86_400_000,
        liveExecs: 3,
        lease: { expiresAt: Date.now() + 365 * 86_400_000, idleTimeoutMs: 86_400_000 },
        expiresAt: Date.now() + 365 * 86_400_000,
      }),
    );
    const seen = sessionOf((await s.json("GET", "/v1/sessions/liar")).body);
    expect(seen.expiresAt).toBe(created.expiresAt);
    expect(seen.idleTimeoutMs).toBe(created.idleTimeoutMs);
    expect(seen.lastActivityAt).toBeLessThanOrEqual(Date.now());
  });

  it("reads at most 64 KiB of a status answer and shows the session without it", async () => {
    const s = await spawner();
    await s.json("POST", "/v1/sessions", { id: "huge", org: "acme" });
    let written = 0;
    s.backend.runnerd("huge").answer("GET /v1/status", (res) => {
      res.writeHead(200, { "content-type": "application/json" });
      const chunk = Buffer.alloc(64 * 1024, " ");
      // Never-ending: only a reader that stops reading ends it.
      const pump = () => {
        while (res.write(chunk)) {
          written += chunk.length;
          if (written > 64 * 1024 * 1024) return res.end();
        }
        res.once("drain", pump);
      };
      pump();
    });
    const got = await s.json("GET", "/v1/sessions/huge");
    expect(got.status).toBe(200);
    expect(sessionOf(got.body)).toMatchObject({ state: "ready", lastActivityAt: null });
    expect(written).toBeLessThan(16 * 1024 * 1024);
    expect(s.logs()).toContain("RUNNERD_BAD_REPLY");
  });

  it("fails a create whose runnerd answers the env hand-over with too much, or with what is not JSON, leaving nothing", async () => {
    for (const [id, answer] of [
      [
        "big",
        (res: ServerResponse) => {
          res.writeHead(200, { "content-type": "application/json", "content-length": String(10 * 1024 * 1024) });
          res.end();
        },
      ],
      [
        "garbled",
        (res: ServerResponse) => {
          res.writeHead(200, { "content-type": "application/json" });
          res.end('{"names": ["A"], "denied": [');
        },
      ],
    ] as const) {
      const s = await spawner({}, { runnerdAnswers: { "PATCH /v1/env": answer } });
      const created = await s.json("POST", "/v1/sessions", { id, org: "acme", env: { A: "1" } });
      expect(created.status).toBe(502);
      expect(errorOf(created.body).code).toBe("RUNNERD_BAD_REPLY");
      expect(await s.backend.list()).toEqual([]);
    }
  });

  it("passes on only the headers runnerd's routes answer with, never a cookie, a redirect or a CORS grant", async () => {
    const s = await spawner();
    await s.json("POST", "/v1/sessions", { id: "headers", org: "acme" });
    s.backend.runnerd("headers").answer("GET /v1/env", (res) => {
      res.writeHead(200, {
        "content-type": "application/json",
        "set-cookie": "session=stolen; Path=/",
        location: "https://evil.example/",
        "access-control-allow-origin": "*",
        "www-authenticate": 'Bearer realm="runnerd"',
        "x-exec-id": "e1",
      });
      res.end(JSON.stringify({ names: [] }));
    });
    const response = await s.request("GET", "/v1/sessions/headers/env");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ names: [] });
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(response.headers.get("x-exec-id")).toBe("e1");
    for (const name of ["set-cookie", "location", "access-control-allow-origin", "www-authenticate"]) {
      expect(response.headers.get(name), name).toBeNull();
    }
  });

  it("gives up on a runnerd that sends headers and never the rest, within the control call's deadline", async () => {
    const s = await spawner({}, { runnerdAnswers: { "PATCH /v1/env": (res) => res.writeHead(200).flushHeaders() } });
    const started = Date.now();
    const created = await s.json("POST", "/v1/sessions", { id: "slow", org: "acme", env: { A: "1" } });
    expect(Date.now() - started).toBeLessThan(2900);
    expect(created.status).toBe(502);
    expect(errorOf(created.body)).toMatchObject({ code: "RUNNERD_UNREACHABLE" });
    expect(await s.backend.list()).toEqual([]);
  });
});
