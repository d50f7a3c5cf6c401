import { createServer } from "node:http";
import { getRequestListener } from "@hono/node-server";
import { answerClientErrors, createLogger, listen, loadConfigOrExit, systemClock } from "@sbx/edge";
import { createRunnerd } from "./app.js";
import { loadConfig } from "./config.js";

/** Replaced at build time with the package version. */
declare const RUNNERD_VERSION: string;

async function main(): Promise<void> {
  const config = loadConfigOrExit("runnerd", () => loadConfig(process.env));
  const log = createLogger("runnerd", config.logLevel);
  const version = typeof RUNNERD_VERSION === "string" ? RUNNERD_VERSION : "dev";
  if (process.pid === 1) {
    log.warn("runnerd is PID 1 without an init: orphaned grandchildren will not be reaped; run it under tini");
  }
  const runnerd = await createRunnerd({ config, version, clock: systemClock, log, ownEnv: process.env });
  const server = createServer(
    // Uploads and event streams may run for hours; only idle sockets are closed.
    { requestTimeout: 0, keepAliveTimeout: 65_000 },
    getRequestListener(runnerd.app.fetch),
  );
  answerClientErrors(server, log);
  listen(server, config.host, config.port, log, { version, pid: process.pid, root: config.root });

  let stopping = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, "second signal: exiting now");
      process.exit(1);
    }
    stopping = true;
    log.info({ signal, liveExecs: runnerd.execs.liveCount }, "shutting down");
    server.close();
    // Running execs end `interrupted`; then everything finished is kept for the next start.
    await runnerd.execs.shutdown(config.shutdownGraceMs);
    await runnerd.persist().catch((error: unknown) => log.error({ err: error }, "could not persist runnerd state"));
    server.closeAllConnections();
    log.info("stopped");
    process.exit(0);
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, (s) => void shutdown(s));
}

main().catch((error: unknown) => {
  process.stderr.write(`runnerd: failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
