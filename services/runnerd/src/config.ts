import { ConfigError } from "@sbx/edge";
import { describeEnvIssues } from "@sbx/protocol";
import { z } from "zod";

const MiB = 1024 * 1024;

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.string().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(z.int().min(min).max(max));

const list = z.string().transform((v) =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== ""),
);

/**
 * Every knob runnerd reads, keyed by the environment variable that sets it.
 * Read once at start; a bad value stops the process naming the variable.
 */
const ConfigEnvSchema = z.object({
  RUNNERD_HOST: z.string().min(1).default("0.0.0.0"),
  RUNNERD_PORT: int(0, 65_535).default(7070),
  /** Hex sha256 of the bearer token. runnerd never sees the token itself. */
  RUNNERD_TOKEN_SHA256: z
    .string()
    .regex(/^[0-9a-fA-F]{64}$/, "must be the 64 hex digits of the token's sha256")
    .transform((v) => v.toLowerCase()),
  RUNNERD_ROOT: z.string().startsWith("/", "must be an absolute path").default("/workspace"),
  /**
   * Where runnerd keeps the session env and finished execs across a stop or restart
   * (default: `.sbx/runnerd` in the workspace, on its volume); `off` keeps nothing.
   */
  RUNNERD_STATE_DIR: z
    .union([z.literal("off"), z.string().startsWith("/", "must be an absolute path or off")])
    .optional(),
  RUNNERD_RING_BYTES: int(64 * 1024).default(4 * MiB),
  RUNNERD_ORPHAN_TIMEOUT_MS: int(1000).default(600_000),
  RUNNERD_MAX_EXECS: int(1, 100_000).default(64),
  RUNNERD_HEARTBEAT_MS: int(100, 3_600_000).default(15_000),
  /**
   * Bytes of output one event consumer may hold beyond the replay buffer
   * (evicted before it read them) before it is cut off; it can re-attach.
   */
  RUNNERD_CONSUMER_BUFFER_BYTES: int(64 * 1024).default(16 * MiB),
  /** `?wait=true` keeps the newest this-many bytes of each of stdout and stderr. */
  RUNNERD_WAIT_OUTPUT_BYTES: int(1024).default(MiB),
  /** Finished execs keep their replay buffer for this long... */
  RUNNERD_RETAIN_MS: int(1000).default(30 * 60_000),
  /** ...and at most this many keep their output; older ones keep only their exit record. */
  RUNNERD_RETAIN_OUTPUT_EXECS: int(0).default(64),
  /** Finished execs remembered at all (exit record only past the output limit). */
  RUNNERD_RETAIN_EXECS: int(1).default(1024),
  /** After the main process exits, how long to wait for its stdout/stderr to close. */
  RUNNERD_PIPE_DRAIN_MS: int(0, 60_000).default(250),
  /** When a deadline ends an exec: time between SIGTERM and SIGKILL. */
  RUNNERD_KILL_GRACE_MS: int(0, 600_000).default(5000),
  /** On SIGTERM: how long execs get between SIGTERM and SIGKILL. */
  RUNNERD_SHUTDOWN_GRACE_MS: int(0, 120_000).default(5000),
  /** Largest JSON request body. */
  RUNNERD_MAX_JSON_BYTES: int(1024).default(16 * MiB),
  /** Largest file upload, archive extraction or fetch (fetch may ask for less). */
  RUNNERD_MAX_FILE_BYTES: int(1).default(1024 * MiB),
  RUNNERD_FETCH_TIMEOUT_MS: int(1000).default(300_000),
  /** Extra variables of runnerd's own environment passed to execs (comma-separated names). */
  RUNNERD_EXEC_PASSTHROUGH_ENV: list.default([]),
  RUNNERD_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
});

const ConfigSchema = ConfigEnvSchema.transform((e) => ({
  host: e.RUNNERD_HOST,
  port: e.RUNNERD_PORT,
  tokenSha256: e.RUNNERD_TOKEN_SHA256,
  root: e.RUNNERD_ROOT,
  stateDir:
    e.RUNNERD_STATE_DIR === "off"
      ? undefined
      : (e.RUNNERD_STATE_DIR ?? `${e.RUNNERD_ROOT.replace(/\/+$/, "")}/.sbx/runnerd`),
  ringBytes: e.RUNNERD_RING_BYTES,
  orphanTimeoutMs: e.RUNNERD_ORPHAN_TIMEOUT_MS,
  maxExecs: e.RUNNERD_MAX_EXECS,
  heartbeatMs: e.RUNNERD_HEARTBEAT_MS,
  consumerBufferBytes: e.RUNNERD_CONSUMER_BUFFER_BYTES,
  waitOutputBytes: e.RUNNERD_WAIT_OUTPUT_BYTES,
  retainMs: e.RUNNERD_RETAIN_MS,
  retainOutputExecs: e.RUNNERD_RETAIN_OUTPUT_EXECS,
  retainExecs: e.RUNNERD_RETAIN_EXECS,
  pipeDrainMs: e.RUNNERD_PIPE_DRAIN_MS,
  killGraceMs: e.RUNNERD_KILL_GRACE_MS,
  shutdownGraceMs: e.RUNNERD_SHUTDOWN_GRACE_MS,
  maxJsonBytes: e.RUNNERD_MAX_JSON_BYTES,
  maxFileBytes: e.RUNNERD_MAX_FILE_BYTES,
  fetchTimeoutMs: e.RUNNERD_FETCH_TIMEOUT_MS,
  execPassthroughEnv: e.RUNNERD_EXEC_PASSTHROUGH_ENV,
  logLevel: e.RUNNERD_LOG_LEVEL,
}));

export type Config = z.output<typeof ConfigSchema>;

/** Reads and validates runnerd's configuration from `env`. */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const result = ConfigSchema.safeParse(env);
  if (!result.success) throw new ConfigError(describeEnvIssues(result.error, env));
  return result.data;
}
