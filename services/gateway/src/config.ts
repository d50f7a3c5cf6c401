import { ConfigError } from "@sbx/edge";
import { describeEnvIssues } from "@sbx/protocol";
import { z } from "zod";
import { type PrivateAllowance, parsePrivateAllowance } from "./egress/address-policy.js";

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.string().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(z.int().min(min).max(max));

const ConfigEnvSchema = z.object({
  /** The proxy sessions use (HTTP_PROXY): CONNECT and plain HTTP forwarding. Sessions reach only this port. */
  GATEWAY_PROXY_HOST: z.string().min(1).default("0.0.0.0"),
  GATEWAY_PROXY_PORT: int(0, 65_535).default(3128),
  /** Health, readiness and metrics: put where only operators and probes reach, never sessions. */
  GATEWAY_ADMIN_HOST: z.string().min(1).default("127.0.0.1"),
  GATEWAY_ADMIN_PORT: int(0, 65_535).default(9091),
  /** The secret shared with the spawner (SPAWNER_GATEWAY_SECRET): session credentials and grant lookups. */
  GATEWAY_SECRET: z.string().min(32, "must be at least 32 characters"),
  /** Where the spawner answers grant lookups (`/internal/v1/sessions/:id/grant`). */
  GATEWAY_SPAWNER_URL: z.url(),
  /**
   * Private destinations that may still be reached, by sessions whose policy names them:
   * `host:port` (that name and port, whatever it resolves to) or a CIDR (`10.1.0.0/16`), comma separated.
   */
  GATEWAY_ALLOW_PRIVATE: z.string().default(""),
  /** Connections one session may hold open at once: one session cannot take the gateway from the others. */
  GATEWAY_MAX_CONNECTIONS_PER_SESSION: int(1, 100_000).default(64),
  /** How long a session's grant is used before it is asked again (a deleted session is refused within it). */
  GATEWAY_GRANT_TTL_MS: int(0, 10_000).default(1000),
  /** How long an upstream connection may take to open. */
  GATEWAY_CONNECT_TIMEOUT_MS: int(100, 120_000).default(10_000),
  GATEWAY_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
});

const ConfigSchema = ConfigEnvSchema.transform((e, ctx) => {
  let allowPrivate: PrivateAllowance = { hostPorts: new Set(), cidrs: [] };
  try {
    allowPrivate = parsePrivateAllowance(e.GATEWAY_ALLOW_PRIVATE);
  } catch (error) {
    ctx.addIssue({
      code: "custom",
      path: ["GATEWAY_ALLOW_PRIVATE"],
      message: error instanceof Error ? error.message : "must be host:port or CIDR entries",
    });
  }
  return {
    proxy: { host: e.GATEWAY_PROXY_HOST, port: e.GATEWAY_PROXY_PORT },
    admin: { host: e.GATEWAY_ADMIN_HOST, port: e.GATEWAY_ADMIN_PORT },
    secret: e.GATEWAY_SECRET,
    spawnerUrl: e.GATEWAY_SPAWNER_URL.replace(/\/+$/, ""),
    allowPrivate,
    maxConnectionsPerSession: e.GATEWAY_MAX_CONNECTIONS_PER_SESSION,
    grantTtlMs: e.GATEWAY_GRANT_TTL_MS,
    connectTimeoutMs: e.GATEWAY_CONNECT_TIMEOUT_MS,
    logLevel: e.GATEWAY_LOG_LEVEL,
  };
});

export type Config = z.output<typeof ConfigSchema>;

/** Reads and validates the gateway's configuration; errors name the variable, never its value. */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const result = ConfigSchema.safeParse(env);
  if (!result.success) throw new ConfigError(describeEnvIssues(result.error, env));
  return result.data;
}
