import { OpenAPIHono } from "@hono/zod-openapi";
import { type Clock, errorResponse, type Logger } from "@sbx/edge";
import { ApiError } from "@sbx/protocol";
import { bodyLimit } from "hono/body-limit";
import { RequestVerifier } from "./auth/request-verifier.js";
import { isStreamingUpload, type SpawnerEnv, signatureAuth } from "./auth/signature-auth.js";
import type { SessionBackend } from "./backends/backend.js";
import type { Config } from "./config.js";
import { Metrics } from "./metrics.js";
import { RunnerdProxy } from "./proxy/runnerd-proxy.js";
import { healthRoutes, PUBLIC_PATHS } from "./routes/health.js";
import { INTERNAL_PREFIX, internalRoutes } from "./routes/internal.js";
import { sessionProxyRoutes } from "./routes/session-proxy.js";
import { sessionRoutes } from "./routes/sessions.js";
import { apiErrorOf } from "./sessions/backend-error-map.js";
import { SessionRegistry } from "./sessions/session-registry.js";
import { SessionService } from "./sessions/session-service.js";
import { Sweeper } from "./sessions/sweeper.js";
import { WarmPool } from "./sessions/warm-pool.js";

export interface Spawner {
  app: OpenAPIHono<SpawnerEnv>;
  sessions: SessionService;
  registry: SessionRegistry;
  sweeper: Sweeper;
  pool: WarmPool;
  proxy: RunnerdProxy;
  metrics: Metrics;
}

export interface SpawnerDeps {
  config: Config;
  backend: SessionBackend;
  version: string;
  clock: Clock;
  log: Logger;
}

/** Wires the spawner's services and HTTP routes; the caller owns the socket, the timers and the change feed. */
export function createSpawner(deps: SpawnerDeps): Spawner {
  const { config, backend, clock, log } = deps;
  const registry = new SessionRegistry(backend, clock, log, config.failedRetentionMs);
  let sessions: SessionService | undefined;
  const metrics = new Metrics(() => sessions?.countsByState() ?? {});
  const pool = new WarmPool(config, backend, clock, log, metrics);
  sessions = new SessionService(config, backend, registry, clock, log, metrics, pool);
  const sweeper = new Sweeper(config, backend, registry, sessions, clock, log, metrics);
  const proxy = new RunnerdProxy(config.runnerdConnectTimeoutMs);
  // A session that died or went away ends its live streams at once, instead of leaving them
  // to hang on an address that will never answer.
  registry.onLoss((id, why) => {
    const ended = proxy.cut(id);
    if (ended > 0) log.info({ sessionId: id, why, ended }, "ended the streams of a lost session");
  });

  const app = new OpenAPIHono<SpawnerEnv>();
  app.onError((error, c) => errorResponse(c, apiErrorOf(error, undefined, "other"), log, "spawner"));
  app.notFound((c) =>
    errorResponse(c, new ApiError("NOT_FOUND", `no route ${c.req.method} ${c.req.path}`), log, "spawner"),
  );

  const limit = bodyLimit({
    maxSize: config.maxJsonBytes,
    onError: () => {
      throw new ApiError("PAYLOAD_TOO_LARGE", `request body exceeds ${config.maxJsonBytes} bytes`);
    },
  });
  // One verifier, so one nonce cache per process.
  const auth = signatureAuth(
    config.devInsecure ? undefined : new RequestVerifier(config.hmacKeys, () => clock.now()),
    log,
  );
  app.use("*", async (c, next) => {
    if (PUBLIC_PATHS.has(c.req.path) || c.req.path.startsWith(INTERNAL_PREFIX)) return next();
    if (isStreamingUpload(c.req.method, c.req.path)) return auth(c, next);
    return limit(c, async () => {
      await auth(c, next);
    });
  });

  app.route("/", healthRoutes(backend));
  app.route(
    "/",
    internalRoutes(registry, config.gateway?.secret, () => clock.now()),
  );
  app.route("/", sessionRoutes(sessions));
  app.route("/", sessionProxyRoutes(sessions, proxy, metrics));
  app.openAPIRegistry.registerComponent("securitySchemes", "hmac", {
    type: "apiKey",
    in: "header",
    name: "X-Sandbox-Signature",
    description:
      "HMAC-SHA256 over `v1\\nMETHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nCONTENT_SHA256`, with X-Sandbox-Key-Id, -Timestamp, -Nonce and -Content-SHA256 headers (docs/api.md).",
  });
  const document = app.getOpenAPI31Document({
    openapi: "3.1.0",
    info: {
      title: "sbx spawner",
      version: deps.version,
      description: "Persistent sandbox sessions for coding agents.",
    },
    security: [{ hmac: [] }],
  });
  app.get("/openapi.json", (c) => c.json(document));
  return { app, sessions, registry, sweeper, pool, proxy, metrics };
}
