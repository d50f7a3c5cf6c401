import { randomBytes } from "node:crypto";
import { userInfo } from "node:os";
import { ApiError, type RunnerdStatus } from "@sbx/protocol";
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { bearerAuth } from "./auth.js";
import type { Clock } from "./clock.js";
import type { Config } from "./config.js";
import { baseEnvironment, EnvStore } from "./env/env-store.js";
import { ExecManager } from "./exec/exec-manager.js";
import { ArchiveService } from "./files/archive.js";
import { FetchService } from "./files/fetch.js";
import { FileService } from "./files/file-service.js";
import { WorkspaceRoot } from "./files/workspace-root.js";
import type { Logger } from "./log.js";
import { envRoutes } from "./routes/env.js";
import { execRoutes } from "./routes/execs.js";
import { fileRoutes } from "./routes/files.js";
import { healthRoutes, statusRoutes } from "./routes/status.js";

export interface Runnerd {
  app: Hono;
  execs: ExecManager;
  status(): RunnerdStatus;
}

export interface RunnerdDeps {
  config: Config;
  version: string;
  clock: Clock;
  log: Logger;
  /** runnerd's own environment, from which execs inherit only a short allow-list. */
  ownEnv: NodeJS.ProcessEnv;
}

/** Wires runnerd's services and HTTP routes; the caller owns the listening socket. */
export async function createRunnerd(deps: RunnerdDeps): Promise<Runnerd> {
  const { config, clock, log } = deps;
  const root = await WorkspaceRoot.open(config.root);
  const envStore = new EnvStore();
  const me = userInfo();
  const incarnation = randomBytes(8).toString("hex");
  const execs = new ExecManager(
    {
      root: root.real,
      ringBytes: config.ringBytes,
      maxExecs: config.maxExecs,
      orphanTimeoutMs: config.orphanTimeoutMs,
      pipeDrainMs: config.pipeDrainMs,
      killGraceMs: config.killGraceMs,
      retainMs: config.retainMs,
      retainOutputExecs: config.retainOutputExecs,
      retainExecs: config.retainExecs,
    },
    {
      envStore,
      baseEnv: baseEnvironment(deps.ownEnv, me, config.execPassthroughEnv),
      incarnation,
      clock,
      log,
    },
  );
  const bootedAt = clock.now();
  let lastActivityAt = bootedAt;
  const status = (): RunnerdStatus => ({
    version: deps.version,
    incarnation,
    bootedAt,
    lastActivityAt,
    liveExecs: execs.liveCount,
  });

  const app = new Hono();
  app.onError((error, c) => errorResponse(c, error, log));
  app.notFound((c) => errorResponse(c, new ApiError("NOT_FOUND", `no route ${c.req.method} ${c.req.path}`), log));

  app.route("/", healthRoutes());
  app.use("/v1/*", bearerAuth(config.tokenSha256));
  app.use("/v1/*", async (c, next) => {
    // Status reads are how the spawner polls idleness; they must not count as activity.
    if (!(c.req.method === "GET" && c.req.path === "/v1/status")) lastActivityAt = clock.now();
    await next();
  });
  const jsonLimit = bodyLimit({
    maxSize: config.maxJsonBytes,
    onError: () => {
      throw new ApiError("PAYLOAD_TOO_LARGE", `JSON body exceeds ${config.maxJsonBytes} bytes`);
    },
  });
  for (const prefix of [
    "/v1/execs",
    "/v1/execs/*",
    "/v1/env",
    "/v1/files/mkdir",
    "/v1/files/move",
    "/v1/files/fetch",
  ]) {
    app.use(prefix, jsonLimit);
  }

  app.route("/v1/status", statusRoutes({ status }));
  app.route(
    "/v1/execs",
    execRoutes({
      execs,
      heartbeatMs: config.heartbeatMs,
      consumerBufferBytes: config.consumerBufferBytes,
      waitOutputBytes: config.waitOutputBytes,
      clock,
      log,
    }),
  );
  app.route("/v1/env", envRoutes(envStore, log));
  app.route(
    "/v1/files",
    fileRoutes({
      files: new FileService(root, config.maxFileBytes),
      archives: new ArchiveService(root, config.maxFileBytes, log),
      fetcher: new FetchService(root, { maxBytes: config.maxFileBytes, timeoutMs: config.fetchTimeoutMs }, log),
    }),
  );

  return { app, execs, status };
}

/** The one place errors become HTTP responses: the envelope, its status, no internals. */
export function errorResponse(c: Context, error: unknown, log: Logger): Response {
  if (error instanceof ApiError) {
    if (error.status >= 500) log.warn({ code: error.code, err: error.cause }, error.message);
    return envelopeResponse(error);
  }
  log.error({ err: error, method: c.req.method, path: c.req.path }, "unhandled error");
  return envelopeResponse(new ApiError("INTERNAL", "internal error; see runnerd's log"));
}

function envelopeResponse(error: ApiError): Response {
  return new Response(JSON.stringify(error.toEnvelope()), {
    status: error.status,
    headers: { ...error.headers, "Content-Type": "application/json" },
  });
}
