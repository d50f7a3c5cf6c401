import { createServer } from "node:http";
import { getRequestListener } from "@hono/node-server";
import { answerClientErrors, createLogger, listen, loadConfigOrExit, systemClock } from "@sbx/edge";
import pRetry from "p-retry";
import { createSpawner } from "./app.js";
import { backendSummary, createBackend } from "./backends/create-backend.js";
import { loadConfig, usesPublishedSecrets } from "./config.js";
import { metricsApp } from "./routes/metrics.js";

/** Replaced at build time with the package version. */
declare const SPAWNER_VERSION: string;

async function main(): Promise<void> {
  const config = loadConfigOrExit("spawner", () => loadConfig(process.env));
  const log = createLogger("spawner", config.logLevel);
  const version = typeof SPAWNER_VERSION === "string" ? SPAWNER_VERSION : "dev";
  if (usesPublishedSecrets(config)) {
    log.warn(
      "running with the DEVELOPMENT secrets published in the README: anyone can sign requests. Set SBX_SECRET and SBX_RUNNERD_SECRET (compose) or SPAWNER_HMAC_KEYS and SPAWNER_RUNNERD_SECRET.",
    );
  }
  if (config.devInsecure) {
    log.warn(
      { host: config.host },
      "SPAWNER_DEV_INSECURE is set: requests are NOT authenticated. Never use this outside local development.",
    );
  }
  const backend = createBackend(config, log);
  const spawner = createSpawner({ config, backend, version, clock: systemClock, log });
  // Without its backend the spawner still starts, reports /readyz 503 and answers 503
  // BACKEND_UNAVAILABLE, and keeps trying: an engine restart must not need a spawner restart.
  const connect = async (): Promise<number> => {
    await backend.init();
    return spawner.registry.adopt();
  };
  // The backend's change feed tells this replica within moments when a session dies or goes away.
  const stopFollowing = spawner.registry.follow();
  const stopping = new AbortController();
  const adopted = await connect().catch((error: unknown) => {
    log.error({ err: error }, "backend unavailable at start; retrying (1 s, doubling up to 5 s)");
    pRetry(connect, {
      retries: Number.POSITIVE_INFINITY,
      minTimeout: 1000,
      maxTimeout: 5000,
      signal: stopping.signal,
      onFailedAttempt: ({ error: again }) => log.warn({ err: again }, "backend still unavailable"),
    }).then(
      (count) => log.info({ adopted: count }, "backend available"),
      () => undefined, // stopped before it came back
    );
    return 0;
  });

  // Periodic work never overlaps itself: the next run is scheduled when this one ends.
  const every = (ms: number, what: string, work: () => Promise<unknown>) => {
    let timer: NodeJS.Timeout;
    const run = () => {
      work()
        .catch((error: unknown) => log.warn({ err: error }, `${what} failed`))
        .finally(() => {
          timer = setTimeout(run, ms);
          timer.unref();
        });
    };
    timer = setTimeout(run, ms);
    timer.unref();
    return () => clearTimeout(timer);
  };
  const stopSweeps = every(config.sweepIntervalMs, "sweep", () => spawner.sweeper.sweep());
  const stopAdoption = every(config.adoptIntervalMs, "adoption", () => spawner.registry.adopt());
  const stopPools = every(config.poolIntervalMs, "warm pool", () => spawner.pool.fill());

  const server = createServer(
    // Event streams and uploads may run for hours; only idle sockets are closed.
    { requestTimeout: 0, keepAliveTimeout: 65_000 },
    getRequestListener(spawner.app.fetch),
  );
  answerClientErrors(server, log);
  listen(server, config.host, config.port, log, {
    version,
    deployment: config.deployment,
    ...backendSummary(config),
    adopted,
  });

  const metricsServer = createServer(getRequestListener(metricsApp(spawner.metrics, log).fetch));
  answerClientErrors(metricsServer, log);
  listen(metricsServer, config.metricsHost, config.metricsPort, log, {}, "metrics listening");

  const shutdown = (signal: NodeJS.Signals) => {
    log.info({ signal }, "shutting down (sessions keep running)");
    stopSweeps();
    stopAdoption();
    stopPools();
    stopping.abort();
    stopFollowing();
    void backend.close();
    server.close();
    server.closeAllConnections();
    metricsServer.close();
    spawner.proxy.close();
    // The pool locks held now are given back, so that another replica (or this one restarted)
    // fills the pools at once instead of after the locks expire. A busy platform may take seconds
    // to answer: up to 8 s, inside an orchestrator's stop grace (10 s Docker, 30 s Kubernetes).
    // The timer is ref'd on purpose: with the servers closed, it is what keeps Node from ending
    // while a release is still only promises (no socket yet), which would leave the lock behind.
    const exit = () => process.exit(0);
    setTimeout(exit, 8000);
    void spawner.pool.close().finally(exit);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, shutdown);
}

main().catch((error: unknown) => {
  process.stderr.write(`spawner: failed to start: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
