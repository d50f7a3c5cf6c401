import {
  BackendUnavailableError,
  CapacityError,
  ConflictError,
  ConnectionError,
  ExecNotFoundError,
  FileNotFoundError,
  ForbiddenError,
  PayloadTooLargeError,
  RunnerdUnreachableError,
  SandboxClient,
  type SandboxError,
  SessionConflictError,
  SessionFailedError,
  SessionNotFoundError,
  SessionStartTimeoutError,
  UnauthorizedError,
  UpstreamError,
  ValidationError,
} from "@sbx/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildMisbehavingImage,
  docker,
  dockerUnavailable,
  MISSING_IMAGE,
  removeDeployment,
} from "../support/docker.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";
import { type SpawnerHandle, startSpawner } from "../support/spawner.js";

const skip = skipUnlessPlatform("Docker", await dockerUnavailable(), "SDK error tests");

/** Awaits `promise`, expecting it to fail with an instance of `type` and this code. */
async function expectError<T extends SandboxError>(
  promise: Promise<unknown>,
  type: abstract new (...args: never[]) => T,
  code: string,
): Promise<T> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(type);
  if (!(error instanceof type)) throw new Error("unreachable");
  expect(error.code).toBe(code);
  return error;
}

describe("typed SDK errors, one per error code", skippedBecause(skip), () => {
  let spawner: SpawnerHandle;
  let client: SandboxClient;
  let SILENT_IMAGE: string;

  beforeAll(async () => {
    SILENT_IMAGE = await buildMisbehavingImage("silent");
    spawner = await startSpawner({
      env: {
        SPAWNER_MAX_SESSIONS: "2",
        SPAWNER_MAX_JSON_BYTES: "4096",
        SPAWNER_CREATE_TIMEOUT_MS: "3000",
        SPAWNER_PROFILES: JSON.stringify({ odd: { images: [SILENT_IMAGE, MISSING_IMAGE] } }),
      },
    });
    client = new SandboxClient({ baseUrl: spawner.url, keyId: spawner.keyId, secret: spawner.secret });
    await client.createSession({ id: "errs", org: "errors" });
  });
  afterAll(async () => {
    await spawner?.stop();
    if (spawner) await removeDeployment(spawner.deployment);
    if (SILENT_IMAGE) await docker("rmi", "-f", SILENT_IMAGE).catch(() => "");
  });

  it("UnauthorizedError for a wrong secret", async () => {
    const wrong = new SandboxClient({
      baseUrl: spawner.url,
      keyId: spawner.keyId,
      secret: "not-the-secret-0123456789",
    });
    const error = await expectError(wrong.listSessions(), UnauthorizedError, "SIGNATURE_INVALID");
    expect(error.status).toBe(401);
  });

  it("ValidationError with field paths for a bad request", async () => {
    const error = await expectError(client.createSession({ org: "not an org!" }), ValidationError, "VALIDATION_FAILED");
    expect(JSON.stringify(error.details)).toContain('"path":"org"');
  });

  it("ForbiddenError for an image off the allow-list and a path outside the workspace", async () => {
    await expectError(client.createSession({ org: "errors", image: "alpine:3" }), ForbiddenError, "IMAGE_NOT_ALLOWED");
    await expectError(client.session("errs").readFileBytes("../../etc/passwd"), ForbiddenError, "PATH_OUTSIDE_ROOT");
  });

  it("NotFound errors for sessions, execs and files", async () => {
    await expectError(client.getSession("ghost"), SessionNotFoundError, "SESSION_NOT_FOUND");
    await expectError(client.session("errs").getExec("ghost"), ExecNotFoundError, "EXEC_NOT_FOUND");
    await expectError(client.session("errs").stat("ghost.txt"), FileNotFoundError, "FILE_NOT_FOUND");
  });

  it("Conflict errors for a different spec, a live exec id and a closed stdin", async () => {
    await expectError(client.createSession({ id: "errs", org: "other" }), SessionConflictError, "SESSION_CONFLICT");
    const session = client.session("errs");
    const live = await session.exec({ execId: "live", argv: ["sleep", "30"] });
    await expectError(session.exec({ execId: "live", argv: ["true"] }), ConflictError, "EXEC_EXISTS");
    await expectError(live.writeStdin("x"), ConflictError, "STDIN_CLOSED");
    await live.cancel("SIGKILL");
  });

  it("PayloadTooLargeError for a body over the limit", async () => {
    await expectError(
      client.session("errs").patchEnv({ set: { BIG: "x".repeat(8192) } }),
      PayloadTooLargeError,
      "PAYLOAD_TOO_LARGE",
    );
  });

  it("UpstreamError for an image that cannot be had, SessionStartTimeoutError for a runnerd that never answers", async () => {
    await expectError(
      client.createSession({ org: "errors", profile: "odd", image: MISSING_IMAGE }),
      UpstreamError,
      "IMAGE_UNAVAILABLE",
    );
    await expectError(
      client.createSession({ org: "errors", profile: "odd", image: SILENT_IMAGE }),
      SessionStartTimeoutError,
      "RUNNERD_NOT_READY",
    );
  });

  it("CapacityError with retryAfterMs when sessions run out", async () => {
    await client.createSession({ id: "second", org: "errors" });
    const error = await expectError(client.createSession({ org: "errors" }), CapacityError, "CAPACITY_EXCEEDED");
    expect(error.retryAfterMs).toBe(30_000);
    await client.deleteSession("second");
  });

  it("RunnerdUnreachableError when a session's runnerd cannot be reached, SessionFailedError once it died", async () => {
    const name = `sbx-${spawner.deployment}-errs`;
    await docker("network", "disconnect", "-f", `sbx-${spawner.deployment}`, name);
    await expectError(client.session("errs").run({ argv: ["true"] }), RunnerdUnreachableError, "RUNNERD_UNREACHABLE");
    await docker("kill", name);
    const failed = await expectError(client.session("errs").listExecs(), SessionFailedError, "SESSION_FAILED");
    expect(failed.status).toBe(410);
    expect(failed.reason).toMatchObject({ code: "exited" });
  });

  it("BackendUnavailableError when the spawner cannot reach Docker", async () => {
    const blind = await startSpawner({ env: { SPAWNER_DOCKER_SOCKET: "/nonexistent/docker.sock" } });
    try {
      const blindClient = new SandboxClient({ baseUrl: blind.url, keyId: blind.keyId, secret: blind.secret });
      await expectError(blindClient.createSession({ org: "errors" }), BackendUnavailableError, "BACKEND_UNAVAILABLE");
      expect((await fetch(`${blind.url}/readyz`)).status).toBe(503);
    } finally {
      await blind.stop();
    }
  });

  it("ConnectionError when no spawner answers", async () => {
    const nowhere = new SandboxClient({ baseUrl: "http://127.0.0.1:9", secret: "irrelevant-secret-0123" });
    const error = await expectError(nowhere.listSessions(), ConnectionError, "CONNECTION_FAILED");
    expect(error.status).toBe(0);
  });
});
