import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import { ErrorEnvelopeSchema, signRequest } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerUnavailable, leftovers, removeDeployment } from "../support/docker.js";
import { eventually } from "../support/proc.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";
import { type SpawnerHandle, startSpawner } from "../support/spawner.js";

const skip = skipUnlessPlatform("Docker", await dockerUnavailable(), "spawner auth tests");

describe("request signing and bad input", skippedBecause(skip), () => {
  let spawner: SpawnerHandle;

  beforeAll(async () => {
    spawner = await startSpawner({ env: { SPAWNER_MAX_JSON_BYTES: "65536" } });
  });
  afterAll(async () => {
    await spawner?.stop();
    if (spawner) await removeDeployment(spawner.deployment);
  });

  /** Sends a request signed with `overrides` applied to the headers and options. */
  async function send(
    method: string,
    path: string,
    options: {
      body?: string;
      sign?: Partial<Parameters<typeof signRequest>[0]>;
      headers?: Record<string, string>;
    } = {},
  ) {
    const headers = signRequest({
      keyId: spawner.keyId,
      secret: spawner.secret,
      method,
      pathWithQuery: path,
      body: options.body,
      ...options.sign,
    });
    const response = await fetch(`${spawner.url}${path}`, {
      method,
      headers: { ...headers, ...options.headers },
      ...(options.body === undefined ? {} : { body: options.body }),
    });
    const text = await response.text();
    const body: unknown = text === "" ? undefined : JSON.parse(text);
    return { status: response.status, text, body };
  }

  const code = (body: unknown) => ErrorEnvelopeSchema.parse(body).error.code;

  it("serves health and readiness without a signature, and metrics on a listener of their own", async () => {
    expect((await fetch(`${spawner.url}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${spawner.url}/readyz`)).json()).toMatchObject({ status: "ready", backend: "docker" });
    const metrics = await (await fetch(`${spawner.metricsUrl()}/metrics`)).text();
    expect(metrics).toContain("sbx_session_creates_total");
    expect(metrics).toContain("sbx_sessions");
    // Not on the API's port, where whoever reaches the API would read them.
    expect((await fetch(`${spawner.url}/metrics`)).status).toBe(401);
  });

  it("refuses unsigned requests, naming what is missing", async () => {
    const response = await fetch(`${spawner.url}/v1/sessions`);
    expect(response.status).toBe(401);
    const body: unknown = await response.json();
    expect(code(body)).toBe("SIGNATURE_MISSING");
  });

  it.each([
    ["a wrong secret", { secret: "not-the-secret-at-all-0123" }, "SIGNATURE_INVALID"],
    ["an unknown key id", { keyId: "nobody" }, "UNKNOWN_KEY"],
    ["a timestamp 5 minutes old", { now: Date.now() - 5 * 60_000 }, "TIMESTAMP_SKEW"],
    ["a timestamp 5 minutes ahead", { now: Date.now() + 5 * 60_000 }, "TIMESTAMP_SKEW"],
    ["a short nonce", { nonce: "abc" }, "SIGNATURE_INVALID"],
    ["a signature over another path", { pathWithQuery: "/v1/sessions?org=other" }, "SIGNATURE_INVALID"],
    ["a signature over another method", { method: "POST" }, "SIGNATURE_INVALID"],
  ])("answers %s with 401 %s and no secret", async (_name, sign, expected) => {
    const result = await send("GET", "/v1/sessions", { sign });
    expect(result.status).toBe(401);
    expect(code(result.body)).toBe(expected);
    expect(result.text).not.toContain(spawner.secret);
  });

  it("refuses a replayed nonce", async () => {
    const nonce = randomBytes(16).toString("hex");
    expect((await send("GET", "/v1/sessions", { sign: { nonce } })).status).toBe(200);
    const replay = await send("GET", "/v1/sessions", { sign: { nonce } });
    expect(replay.status).toBe(401);
    expect(code(replay.body)).toBe("NONCE_REPLAYED");
  });

  it("refuses a body that is not the one signed, and UNSIGNED-PAYLOAD outside uploads", async () => {
    const signedFor = JSON.stringify({ org: "acme" });
    const tampered = await fetch(`${spawner.url}/v1/sessions`, {
      method: "POST",
      headers: signRequest({
        keyId: spawner.keyId,
        secret: spawner.secret,
        method: "POST",
        pathWithQuery: "/v1/sessions",
        body: signedFor,
      }),
      body: JSON.stringify({ org: "evil" }),
    });
    expect(tampered.status).toBe(401);
    expect(code(await tampered.json())).toBe("CONTENT_HASH_MISMATCH");
    const unsigned = await send("POST", "/v1/sessions", { body: signedFor, sign: { body: "UNSIGNED-PAYLOAD" } });
    expect(unsigned.status).toBe(401);
    expect(code(unsigned.body)).toBe("SIGNATURE_INVALID");
  });

  it.each([
    ["malformed JSON", "{org:", "INVALID_JSON", 400],
    ["a missing org", "{}", "VALIDATION_FAILED", 400],
    ["an id that is not a DNS label", JSON.stringify({ org: "a", id: "Bad_ID" }), "VALIDATION_FAILED", 400],
    ["a hostile id", JSON.stringify({ org: "a", id: "../../etc" }), "VALIDATION_FAILED", 400],
    ["a 64-character id", JSON.stringify({ org: "a", id: "a".repeat(64) }), "VALIDATION_FAILED", 400],
    ["an unknown field", JSON.stringify({ org: "a", ttl: 5 }), "VALIDATION_FAILED", 400],
    ["a reserved env name", JSON.stringify({ org: "a", env: { RUNNERD_TOKEN_SHA256: "x" } }), "VALIDATION_FAILED", 400],
    [
      "resources above the maximum",
      JSON.stringify({ org: "a", resources: { memoryMb: 10_000_000 } }),
      "VALIDATION_FAILED",
      400,
    ],
    ["a TTL above the maximum", JSON.stringify({ org: "a", ttlMs: 400 * 24 * 3_600_000 }), "VALIDATION_FAILED", 400],
    ["an image off the allow-list", JSON.stringify({ org: "a", image: "alpine:latest" }), "IMAGE_NOT_ALLOWED", 403],
    ["an unknown profile", JSON.stringify({ org: "a", profile: "gpu" }), "PROFILE_NOT_FOUND", 404],
    ["a bad label key", JSON.stringify({ org: "a", labels: { "Bad Key": "x" } }), "VALIDATION_FAILED", 400],
  ])("answers a create with %s with a clear error and creates nothing", async (_name, body, expected, status) => {
    const result = await send("POST", "/v1/sessions", { body });
    expect(result.status).toBe(status);
    expect(code(result.body)).toBe(expected);
    expect((await leftovers(spawner.deployment)).containers).toEqual([]);
  });

  it("answers an oversize body with 413", async () => {
    const result = await send("POST", "/v1/sessions", { body: JSON.stringify({ org: "a", pad: "x".repeat(100_000) }) });
    expect(result.status).toBe(413);
    expect(code(result.body)).toBe("PAYLOAD_TOO_LARGE");
  });

  it("answers with the envelope even what Node's parser refuses: huge headers (431), a malformed request (400)", async () => {
    const port = Number(new URL(spawner.url).port);
    for (const [request, status, expected] of [
      [`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(100_000)}\r\n\r\n`, 431, "HEADERS_TOO_LARGE"],
      ["NOT HTTP AT ALL\r\n\r\n", 400, "MALFORMED_REQUEST"],
    ] as const) {
      const answer = await new Promise<string>((resolve, reject) => {
        const socket = connect(port, "127.0.0.1");
        let text = "";
        socket.on("data", (chunk) => {
          text += chunk.toString();
        });
        socket.on("close", () => resolve(text));
        socket.on("error", reject);
        socket.write(request);
      });
      expect(answer.startsWith(`HTTP/1.1 ${status} `)).toBe(true);
      expect(code(JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)))).toBe(expected);
    }
  });

  it("answers hostile session ids and unknown sessions on every route", async () => {
    for (const path of ["/v1/sessions/UPPER", "/v1/sessions/a_b/execs", "/v1/sessions/-x-/files/list"]) {
      const result = await send("GET", path);
      expect(result.status).toBe(400);
    }
    for (const path of ["/v1/sessions/ghost", "/v1/sessions/ghost/execs", "/v1/sessions/ghost/files/list?path=."]) {
      const result = await send("GET", path);
      expect(result.status).toBe(404);
      expect(code(result.body)).toBe("SESSION_NOT_FOUND");
    }
    expect((await send("GET", "/v1/nothing")).status).toBe(404);
  });

  it("serves an OpenAPI document generated from the schemas", async () => {
    const result = await send("GET", "/openapi.json");
    expect(result.status).toBe(200);
    expect(result.body).toMatchObject({
      openapi: "3.1.0",
      paths: { "/v1/sessions": { post: { summary: expect.any(String) } } },
    });
  });
});

describe("the development switch", skippedBecause(skip), () => {
  it("serves unsigned requests on loopback, logging each one as unauthenticated", async () => {
    const insecure = await startSpawner({ env: { SPAWNER_DEV_INSECURE: "1", SPAWNER_HMAC_KEYS: "" } });
    try {
      expect(insecure.logs()).toContain("requests are NOT authenticated");
      const response = await fetch(`${insecure.url}/v1/sessions`);
      expect(response.status).toBe(200);
      // The log line is written as the request is served: it reaches our pipe a moment later.
      expect(await eventually(() => insecure.logs().includes("UNAUTHENTICATED request"), 5000)).toBe(true);
    } finally {
      await insecure.stop();
      await removeDeployment(insecure.deployment);
    }
  });

  it("refuses to start unless bound to loopback", async () => {
    await expect(
      startSpawner({ env: { SPAWNER_DEV_INSECURE: "1", SPAWNER_HMAC_KEYS: "", SPAWNER_HOST: "0.0.0.0" } }),
    ).rejects.toThrow(/SPAWNER_DEV_INSECURE is only allowed with SPAWNER_HOST on loopback/);
  });
});
