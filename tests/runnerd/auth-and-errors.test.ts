import { ErrorEnvelopeSchema, HealthResponseSchema, REQUEST_ID_HEADER, RunnerdStatusSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunnerdHandle, startRunnerd } from "../support/runnerd.js";

let runnerd: RunnerdHandle;

beforeAll(async () => {
  runnerd = await startRunnerd({ env: { RUNNERD_MAX_JSON_BYTES: "4096" } });
});
afterAll(async () => {
  await runnerd?.stop();
});

async function envelope(response: Response) {
  expect(response.headers.get("content-type")).toMatch(/^application\/json/);
  return ErrorEnvelopeSchema.parse(await response.json()).error;
}

describe("authentication", () => {
  it("serves /healthz without a token", async () => {
    const response = await fetch(`${runnerd.url}/healthz`);
    expect(response.status).toBe(200);
    expect(HealthResponseSchema.parse(await response.json())).toEqual({ status: "ok" });
  });

  it.each([
    ["no header", {}],
    ["a wrong token", { authorization: "Bearer not-the-token" }],
    ["another scheme", { authorization: `Basic ${Buffer.from("a:b").toString("base64")}` }],
    ["an empty bearer", { authorization: "Bearer " }],
  ])("answers %s with 401 UNAUTHORIZED", async (_name, headers: Record<string, string>) => {
    for (const path of ["/v1/status", "/v1/execs", "/v1/env", "/v1/files/list?path=."]) {
      const response = await fetch(`${runnerd.url}${path}`, { headers });
      expect(response.status).toBe(401);
      expect(response.headers.get("www-authenticate")).toMatch(/^Bearer/);
      const error = await envelope(response);
      expect(error.code).toBe("UNAUTHORIZED");
      expect(error.message).not.toContain(runnerd.token);
    }
  });

  it("refuses an unauthenticated exec without running it", async () => {
    const response = await fetch(`${runnerd.url}/v1/execs`, {
      method: "POST",
      body: JSON.stringify({ shell: "touch should-not-exist" }),
    });
    expect(response.status).toBe(401);
    const list = await runnerd.json("GET", "/v1/files/list?path=.");
    expect(JSON.stringify(list.body)).not.toContain("should-not-exist");
  });
});

describe("signed requests passed on by the spawner", () => {
  const send = (path: string, requestId: string, init: RequestInit = {}) =>
    runnerd.request(path, { method: "POST", ...init, headers: { [REQUEST_ID_HEADER]: requestId } });

  it("acts once on a request id: the same id again is 401 NONCE_REPLAYED and runs nothing", async () => {
    const id = "a".repeat(64);
    const body = JSON.stringify({ shell: "echo ran >> replayed.txt" });
    expect((await send("/v1/execs?wait=true", id, { body })).status).toBe(200);
    const again = await send("/v1/execs?wait=true", id, { body });
    expect(again.status).toBe(401);
    expect((await envelope(again)).code).toBe("NONCE_REPLAYED");
    const file = await runnerd.request("/v1/files/content?path=replayed.txt");
    expect(await file.text()).toBe("ran\n");
    // Reads carry the id too, and are never refused for it.
    expect((await runnerd.request("/v1/execs", { headers: { [REQUEST_ID_HEADER]: id } })).status).toBe(200);
    expect((await send("/v1/requests", "b".repeat(64))).status).toBe(204);
    expect((await send("/v1/requests", "b".repeat(64))).status).toBe(401);
  });

  it("refuses a malformed request id with 400", async () => {
    const response = await send("/v1/requests", "not-hex");
    expect(response.status).toBe(400);
    expect((await envelope(response)).code).toBe("VALIDATION_FAILED");
  });
});

describe("status", () => {
  it("reports version, incarnation and activity; status reads do not count as activity", async () => {
    const first = RunnerdStatusSchema.parse((await runnerd.json("GET", "/v1/status")).body);
    expect(first.incarnation).toMatch(/^[0-9a-f]{16}$/);
    expect(first.liveExecs).toBe(0);
    await new Promise((r) => setTimeout(r, 20));
    const second = RunnerdStatusSchema.parse((await runnerd.json("GET", "/v1/status")).body);
    expect(second.lastActivityAt).toBe(first.lastActivityAt);
    await runnerd.json("GET", "/v1/env");
    const third = RunnerdStatusSchema.parse((await runnerd.json("GET", "/v1/status")).body);
    expect(third.lastActivityAt).toBeGreaterThan(first.lastActivityAt);
    expect(third.incarnation).toBe(first.incarnation);
  });
});

describe("bad input", () => {
  it("answers malformed JSON with 400 INVALID_JSON", async () => {
    const response = await runnerd.request("/v1/execs", { method: "POST", body: "{not json" });
    expect(response.status).toBe(400);
    expect((await envelope(response)).code).toBe("INVALID_JSON");
  });

  it.each([
    ["neither argv nor shell", {}, "argv"],
    ["both argv and shell", { argv: ["true"], shell: "true" }, "argv"],
    ["an empty argv", { argv: [] }, "argv"],
    ["an unknown field", { argv: ["true"], timeout: 5 }, "(body)"],
    ["a zero timeout", { argv: ["true"], timeoutMs: 0 }, "timeoutMs"],
    ["a fractional timeout", { argv: ["true"], timeoutMs: 1.5 }, "timeoutMs"],
    ["a string timeout", { argv: ["true"], timeoutMs: "10" }, "timeoutMs"],
    ["a hostile execId", { argv: ["true"], execId: "../../etc" }, "execId"],
    ["a NUL in argv", { argv: ["echo", "a\u0000b"] }, "argv[1]"],
    ["a bad env name", { argv: ["true"], env: { "A-B": "1" } }, "env.A-B"],
    ["a bad encoding", { argv: ["true"], encoding: "latin1" }, "encoding"],
    ["bad base64 stdin", { argv: ["cat"], stdin: { data: "***" } }, "stdin.data"],
    ["an unknown stdin mode", { argv: ["cat"], stdin: { mode: "keep" } }, "stdin.mode"],
  ])("answers an exec with %s with 400 naming the field", async (_name, body, field) => {
    const response = await runnerd.json("POST", "/v1/execs", body);
    expect(response.status).toBe(400);
    const error = ErrorEnvelopeSchema.parse(response.body).error;
    expect(error.code).toBe("VALIDATION_FAILED");
    expect(JSON.stringify(error.details)).toContain(`"path":"${field}`);
  });

  it("refuses unknown query parameters and bad booleans", async () => {
    expect((await runnerd.json("GET", "/v1/execs?colour=red")).status).toBe(400);
    expect((await runnerd.json("POST", "/v1/execs?wait=maybe", { argv: ["true"] })).status).toBe(400);
  });

  it("answers an oversize JSON body with 413", async () => {
    const response = await runnerd.json("POST", "/v1/execs", { argv: ["echo", "x".repeat(8192)] });
    expect(response.status).toBe(413);
    expect(ErrorEnvelopeSchema.parse(response.body).error.code).toBe("PAYLOAD_TOO_LARGE");
  });

  it("answers unknown routes and execs with 404 envelopes", async () => {
    const route = await runnerd.json("GET", "/v1/nothing-here");
    expect(route.status).toBe(404);
    expect(ErrorEnvelopeSchema.parse(route.body).error.code).toBe("NOT_FOUND");
    const exec = await runnerd.json("GET", "/v1/execs/unknown-exec");
    expect(exec.status).toBe(404);
    expect(ErrorEnvelopeSchema.parse(exec.body).error.code).toBe("EXEC_NOT_FOUND");
    const events = await runnerd.json("GET", "/v1/execs/unknown-exec/events");
    expect(events.status).toBe(404);
  });

  it("answers a malformed exec id in the path with 400", async () => {
    const response = await runnerd.json("GET", `/v1/execs/${encodeURIComponent("bad id!")}`);
    expect(response.status).toBe(400);
  });

  it("keeps serving after all of the above", async () => {
    const response = await runnerd.json("POST", "/v1/execs?wait=true", { argv: ["echo", "still here"] });
    expect(response.body).toMatchObject({ stdout: "still here\n", outcome: "completed" });
  });
});
