import { type Clock, errorResponse, type Logger } from "@sbx/edge";
import { ApiError } from "@sbx/protocol";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { RequestVerifier } from "./auth/request-verifier.js";
import { isStreamingUpload, type SpawnerEnv, signatureAuth } from "./auth/signature-auth.js";
import type { SessionBackend } from "./backends/backend.js";
import type { Config } from "./config.js";
import { Metrics } from "./metrics.js";
import { openApiDocument } from "./openapi.js";
import { RunnerdProxy } from "./proxy/runnerd-proxy.js";
import { healthRoutes } from "./routes/health.js";
import { sessionProxyRoutes } from "./routes/session-proxy.js";
import { sessionRoutes } from "./routes/sessions.js";
import { SessionService } from "./sessions/session-service.js";

export interface Spawner {
  app: Hono<SpawnerEnv>;
  sessions: SessionService;
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

/** Wires the spawner's services and HTTP routes; the caller owns the socket and the timers. */
export function createSpawner(deps: SpawnerDeps): Spawner {
  const { config, backend, log } = deps;
  let sessions: SessionService | undefined;
  const metrics = new Metrics(() => sessions?.countsByState() ?? {});
  sessions = new SessionService(config, backend, deps.clock, log, metrics);
  const proxy = new RunnerdProxy();

  const app = new Hono<SpawnerEnv>();
  app.onError((error, c) => errorResponse(c, error, log, "spawner"));
  app.notFound((c) =>
    errorResponse(c, new ApiError("NOT_FOUND", `no route ${c.req.method} ${c.req.path}`), log, "spawner"),
  );
  app.route("/", healthRoutes(backend, metrics));

  const limit = bodyLimit({
    maxSize: config.maxJsonBytes,
    onError: () => {
      throw new ApiError("PAYLOAD_TOO_LARGE", `request body exceeds ${config.maxJsonBytes} bytes`);
    },
  });
  app.use("/v1/*", async (c, next) => (isStreamingUpload(c.req.method, c.req.path) ? next() : limit(c, next)));
  app.use("/v1/*", signatureAuth(config.devInsecure ? undefined : new RequestVerifier(config.hmacKeys), log));
  app.use("/openapi.json", signatureAuth(config.devInsecure ? undefined : new RequestVerifier(config.hmacKeys), log));
  app.get("/openapi.json", (c) => c.json(openApiDocument(deps.version)));

  app.route("/v1/sessions", sessionProxyRoutes(sessions, proxy, metrics));
  app.route("/v1/sessions", sessionRoutes(sessions));
  return { app, sessions, proxy, metrics };
}
