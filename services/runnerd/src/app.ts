import { randomBytes } from "node:crypto";
import { userInfo } from "node:os";
import { type Clock, errorResponse, type Logger } from "@sbx/edge";
import { ApiError, REPLAY_WINDOW_MS, REQUEST_ID_HEADER, RequestIdSchema, type RunnerdStatus } from "@sbx/protocol";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { bearerAuth } from "./auth.js";
import type { Config } from "./config.js";
import { baseEnvironment, EnvStore } from "./env/env-store.js";
import { ExecManager } from "./exec/exec-manager.js";
import { ArchiveService } from "./files/archive.js";
import { FetchService } from "./files/fetch.js";
import { FileService } from "./files/file-service.js";
import { WorkspaceRoot } from "./files/workspace-root.js";
import { ReplayGuard } from "./replay-guard.js";
import { envRoutes } from "./routes/env.js";
import { execRoutes } from "./routes/execs.js";
import { fileRoutes } from "./routes/files.js";
import { healthRoutes, statusRoutes } from "./routes/status.js";
import { StateStore } from "./state/state-store.js";

export interface Runnerd {
  app: Hono;
  execs: ExecManager;
  status(): RunnerdStatus;
  /** Writes every finished exec (with its output) and the requests acted on, for the next runnerd of this session. */
  persist(): Promise<void>;
}

export interface RunnerdDeps {
  config: Config;
  version: string;
  clock: Clock;
  log: Logger;
  /** runnerd's own environment, from which execs inherit only a short allow-list. */
  ownEnv: NodeJS.ProcessEnv;
}

/** Signed request ids kept at once (a few MiB at most); past it new mutating requests wait. */
const MAX_LIVE_REQUEST_IDS = 20_000;

/** Wires runnerd's services and HTTP routes; the caller owns the listening socket. */
export async function createRunnerd(deps: RunnerdDeps): Promise<Runnerd> {
  const { config, clock, log } = deps;
  const root = await WorkspaceRoot.open(config.root);
  // What an earlier runnerd of this session kept: env, finished execs (stop/resume, restart).
  const state = await StateStore.open(config.stateDir, log);
  const persistSoon = (what: string, op: (store: StateStore) => Promise<void>) => {
    if (!state) return;
    op(state).catch((error: unknown) => log.error({ err: error, what }, "could not persist runnerd state"));
  };
  const envStore = new EnvStore((await state?.loadEnv()) ?? {}, (values) =>
    persistSoon("env", (store) => store.saveEnv(values)),
  );
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
  const restored = (await state?.loadExecs()) ?? [];
  execs.restore(restored);
  if (restored.length > 0) log.info({ execs: restored.length }, "restored finished execs from the state directory");
  // A little past the window: a request signed at the edge of the skew still finds its id here.
  const replays = new ReplayGuard(REPLAY_WINDOW_MS + 30_000, MAX_LIVE_REQUEST_IDS, clock, await state?.loadRequests());
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
  app.onError((error, c) => errorResponse(c, error, log, "runnerd"));
  app.notFound((c) =>
    errorResponse(c, new ApiError("NOT_FOUND", `no route ${c.req.method} ${c.req.path}`), log, "runnerd"),
  );

  app.route("/", healthRoutes());
  app.use("/v1/*", bearerAuth(config.tokenSha256));
  app.use("/v1/*", async (c, next) => {
    // What the spawner signed and passes on: acted on once, whichever replica it came through.
    const requestId = c.req.header(REQUEST_ID_HEADER);
    if (requestId !== undefined) {
      if (!RequestIdSchema.safeParse(requestId).success) {
        throw new ApiError("VALIDATION_FAILED", `${REQUEST_ID_HEADER} must be 64 lower-case hex digits`);
      }
      if (c.req.method !== "GET" && c.req.method !== "HEAD") replays.accept(requestId);
    }
    await next();
  });
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

  app.route("/v1/status", statusRoutes(status));
  // Where the spawner records a request it acts on itself (a stop, a lifetime change): the
  // middleware above does the work.
  app.post("/v1/requests", (c) => {
    if (c.req.header(REQUEST_ID_HEADER) === undefined) {
      throw new ApiError("VALIDATION_FAILED", `POST /v1/requests needs the ${REQUEST_ID_HEADER} header`);
    }
    return c.body(null, 204);
  });
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

  const persist = async () => {
    await state?.saveRequests(replays.live());
    await state?.saveExecs(execs.snapshots());
  };
  return { app, execs, status, persist };
}
