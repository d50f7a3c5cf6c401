import { lookup } from "node:dns/promises";
import { createServer } from "node:http";
import { getRequestListener } from "@hono/node-server";
import { answerClientErrors, createLogger, listen, loadConfigOrExit, systemClock } from "@sbx/edge";
import { loadConfig } from "./config.js";
import type { Resolver } from "./egress/decision.js";
import { GrantSource } from "./grants/grant-source.js";
import { Metrics } from "./metrics.js";
import { ConnectionLimit } from "./proxy/connection-limit.js";
import { createProxyServer } from "./proxy/proxy-server.js";
import { adminApp } from "./routes/admin.js";

/** Replaced at build time with the package version. */
declare const GATEWAY_VERSION: string;

/** Every address a name has, as the system resolver answers. */
const resolve: Resolver = async (host) => (await lookup(host, { all: true, verbatim: true })).map((a) => a.address);

function main(): void {
  const config = loadConfigOrExit("gateway", () => loadConfig(process.env));
  const log = createLogger("gateway", config.logLevel);
  const version = typeof GATEWAY_VERSION === "string" ? GATEWAY_VERSION : "dev";
  const metrics = new Metrics();
  const grants = new GrantSource(config.spawnerUrl, config.secret, config.grantTtlMs, systemClock, log);
  const proxy = createProxyServer({
    secret: config.secret,
    grants,
    resolve,
    allowPrivate: config.allowPrivate,
    limit: new ConnectionLimit(config.maxConnectionsPerSession),
    connectTimeoutMs: config.connectTimeoutMs,
    metrics,
    log,
  });
  answerClientErrors(proxy, log);
  listen(proxy, config.proxy.host, config.proxy.port, log, { version, spawner: config.spawnerUrl });
  const admin = createServer(getRequestListener(adminApp(metrics, () => proxy.listening, log).fetch));
  answerClientErrors(admin, log);
  listen(admin, config.admin.host, config.admin.port, log, {}, "admin listening");

  const shutdown = (signal: NodeJS.Signals) => {
    log.info({ signal }, "shutting down");
    proxy.close();
    admin.close();
    // Open tunnels end with the process; their clients see the connection close.
    setTimeout(() => process.exit(0), 2000).unref();
    proxy.closeIdleConnections();
  };
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, shutdown);
}

main();
