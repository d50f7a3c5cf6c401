import { ConfigError } from "@sbx/edge";
import {
  DEFAULT_EGRESS_PORTS,
  describeEnvIssues,
  EgressModeSchema,
  EgressRequestSchema,
  HostPatternSchema,
  ImageRefSchema,
  PortSchema,
  ProfileNameSchema,
  SessionIdSchema,
} from "@sbx/protocol";
import { z } from "zod";
import { SPAWNER_OWNED_RUNNERD_SETTINGS } from "./backends/runtime-contract.js";

const MiB = 1024 * 1024;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.string().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(z.int().min(min).max(max));

const decimal = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+(\.\d+)?$/, "must be a number")
    .transform(Number)
    .pipe(z.number().min(min).max(max));

const list = z.string().transform((v) =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== ""),
);

const flag = z.enum(["0", "1", "true", "false"]).transform((v) => v === "1" || v === "true");

/** `id:secret,id2:secret2` — several keys at once allow rotation without downtime. */
const HmacKeysSchema = z.string().transform((v, ctx) => {
  const keys = new Map<string, string>();
  for (const entry of v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")) {
    const at = entry.indexOf(":");
    const id = at > 0 ? entry.slice(0, at) : "";
    const secret = at > 0 ? entry.slice(at + 1) : "";
    if (!/^[A-Za-z0-9._-]{1,64}$/.test(id) || secret.length < 16) {
      ctx.addIssue({
        code: "custom",
        message: "must be id:secret pairs, ids of [A-Za-z0-9._-], secrets of 16+ characters",
      });
      return z.NEVER;
    }
    keys.set(id, secret);
  }
  return keys;
});

const WorkspaceSchema = z.strictObject({
  /** Outlives the Pod: a PersistentVolumeClaim on Kubernetes (Docker's named volume always does). */
  persistent: z.boolean().default(false),
  /** Requested size (PVC) or size limit (emptyDir), MiB. */
  sizeMb: z
    .int()
    .min(64)
    .max(16 * 1024 * 1024)
    .default(10 * 1024),
  /** The StorageClass of the claim; the cluster's default without one. */
  storageClass: z.string().min(1).optional(),
});

const IdleActionSchema = z.enum(["stop", "delete"]);

const ProfileSchema = z.strictObject({
  /** Images sessions of this profile may use; the first is the default. */
  images: z.array(ImageRefSchema).min(1),
  workspace: WorkspaceSchema.optional(),
  /** What idleness does: stop (keep the workspace; the default where it can) or delete. */
  idle: IdleActionSchema.optional(),
  /** A warm pool: `size` members kept running, at most `max` of them being started at once. */
  pool: z.strictObject({ size: z.int().min(0).max(1000), max: z.int().min(1).max(1000).optional() }).optional(),
});

const json = z.string().transform((v, ctx) => {
  try {
    const parsed: unknown = JSON.parse(v);
    return parsed;
  } catch {
    ctx.addIssue({ code: "custom", message: "must be JSON" });
    return z.NEVER;
  }
});

const ProfilesSchema = json.pipe(z.record(ProfileNameSchema, ProfileSchema));

const ConfigEnvSchema = z.object({
  SPAWNER_HOST: z.string().min(1).default("127.0.0.1"),
  SPAWNER_PORT: int(0, 65_535).default(8080),
  /** Prometheus metrics listen here, apart from the API: put it where only Prometheus reaches. */
  SPAWNER_METRICS_HOST: z.string().min(1).default("127.0.0.1"),
  SPAWNER_METRICS_PORT: int(0, 65_535).default(9090),
  /** Signing keys of the public API. Required unless SPAWNER_DEV_INSECURE is set. */
  SPAWNER_HMAC_KEYS: HmacKeysSchema.optional(),
  /** Secret from which every session's runnerd token is derived. */
  SPAWNER_RUNNERD_SECRET: z.string().min(32, "must be at least 32 characters"),
  /** Development only: no request signing. Refused unless bound to loopback. */
  SPAWNER_DEV_INSECURE: flag.default(false),
  /** Names this deployment; several may share one engine without touching each other's sessions. */
  SPAWNER_DEPLOYMENT: SessionIdSchema.default("default"),
  /** Which platform runs the sessions; each has its own settings below. */
  SPAWNER_BACKEND: z.enum(["docker", "kubernetes"]).default("docker"),
  SPAWNER_DOCKER_SOCKET: z.string().default("/var/run/docker.sock"),
  /** Bridge network for session containers (created if missing). Default: sbx-<deployment>. */
  SPAWNER_DOCKER_NETWORK: z.string().optional(),
  /**
   * The subnet that network is made with (e.g. 172.30.99.0/24), so its gateway address — where
   * sessions reach the egress gateway on the host — is known in advance. Default: Docker's choice.
   */
  SPAWNER_DOCKER_SUBNET: z.cidrv4().optional(),
  /**
   * How the spawner reaches runnerd: `address` — the container's IP on the sessions' bridge,
   * routed by the host (the spawner on the host, or in a container with host networking, as
   * compose runs it); `published` — a port published on 127.0.0.1, for hosts that cannot route
   * to container addresses (one more hop: Docker's port proxy). Sessions never reach each other
   * either way: the bridge has inter-container traffic off.
   */
  SPAWNER_RUNNERD_ACCESS: z.enum(["address", "published"]).default("address"),
  SPAWNER_PULL_IMAGES: z.enum(["if-missing", "never"]).default("if-missing"),
  /** Kubernetes: a kubeconfig file; without one $KUBECONFIG, ~/.kube/config or the in-cluster account. */
  SPAWNER_KUBECONFIG: z.string().min(1).optional(),
  /** Kubernetes: the namespace session Pods live in (the spawner's Role is bound there). */
  SPAWNER_KUBE_NAMESPACE: SessionIdSchema.default("sbx-sessions"),
  SPAWNER_KUBE_IMAGE_PULL_POLICY: z.enum(["IfNotPresent", "Always", "Never"]).default("IfNotPresent"),
  /** Kubernetes: a RuntimeClass for session Pods (gVisor, Kata), when the cluster has one. */
  SPAWNER_KUBE_RUNTIME_CLASS: z.string().min(1).optional(),
  /** Kubernetes: the CPU request as a fraction of the CPU limit (1 = Guaranteed QoS). */
  SPAWNER_KUBE_CPU_REQUEST_FRACTION: decimal(0.01, 1).default(0.25),
  /** Kubernetes: how long a new Pod may stay unschedulable before its create fails (0: at once). */
  SPAWNER_KUBE_UNSCHEDULABLE_GRACE_MS: int(0).default(0),
  /** Seconds a deleted session's processes get between SIGTERM and SIGKILL. */
  SPAWNER_TERMINATION_GRACE_SECONDS: int(0, 600).default(10),
  /** The default profile's workspace: a PVC that outlives the Pod (Kubernetes), its size and class. */
  SPAWNER_WORKSPACE_PERSISTENT: flag.default(false),
  SPAWNER_WORKSPACE_SIZE_MB: int(64).default(10 * 1024),
  SPAWNER_WORKSPACE_STORAGE_CLASS: z.string().min(1).optional(),
  /** The default profile's warm pool: members kept running, ready to be claimed by a create. */
  SPAWNER_POOL_SIZE: int(0, 1000).default(0),
  /** How many pool members may be starting at once (default: the pool size). */
  SPAWNER_POOL_MAX_STARTING: int(1, 1000).optional(),
  /** How often each replica checks that every pool is full. */
  SPAWNER_POOL_INTERVAL_MS: int(100).default(2000),
  /** What idleness does to a session of the default profile: stop it (if it can be) or delete it. */
  SPAWNER_IDLE_ACTION: IdleActionSchema.default("stop"),
  /** A call to a stopped session resumes it (1) or is refused with 409 SESSION_STOPPED (0). */
  SPAWNER_AUTO_RESUME: flag.default(true),
  /** The default profile's images (the first is the default image). */
  SPAWNER_IMAGES: list.pipe(z.array(ImageRefSchema).min(1)).default(["sbx-runtime:latest"]),
  /**
   * More profiles, as JSON:
   * {"name": {"images": ["image:tag", ...], "workspace": {"persistent": true, "sizeMb": 2048, "storageClass": "ssd"}}}.
   */
  SPAWNER_PROFILES: ProfilesSchema.optional(),
  SPAWNER_DEFAULT_TTL_MS: int(1000).default(HOUR),
  SPAWNER_MAX_TTL_MS: int(1000).default(24 * HOUR),
  /** Absolute bound on a session's life, however often it is extended. */
  SPAWNER_MAX_LIFETIME_MS: int(1000).default(7 * 24 * HOUR),
  SPAWNER_DEFAULT_IDLE_TIMEOUT_MS: int(1000).default(30 * MINUTE),
  SPAWNER_MAX_IDLE_TIMEOUT_MS: int(1000).default(24 * HOUR),
  SPAWNER_DEFAULT_CPUS: decimal(0.05, 256).default(1),
  SPAWNER_MAX_CPUS: decimal(0.05, 256).default(4),
  SPAWNER_DEFAULT_MEMORY_MB: int(64).default(1024),
  SPAWNER_MAX_MEMORY_MB: int(64).default(8192),
  SPAWNER_DEFAULT_PIDS: int(16).default(1024),
  SPAWNER_MAX_PIDS: int(16).default(8192),
  SPAWNER_MAX_SESSIONS: int(1).default(100),
  SPAWNER_MAX_SESSIONS_PER_ORG: int(1).default(20),
  /** One deadline for a whole create: volume, container, start and runnerd answering. */
  SPAWNER_CREATE_TIMEOUT_MS: int(1000).default(60_000),
  /** How long a failed session stays readable (state, reason) before the sweeper removes it. */
  SPAWNER_FAILED_RETENTION_MS: int(0).default(10 * MINUTE),
  /** Connecting to a runnerd takes well under a millisecond on a healthy network; past this it is dead. */
  SPAWNER_RUNNERD_CONNECT_TIMEOUT_MS: int(50, 60_000).default(1500),
  SPAWNER_SWEEP_INTERVAL_MS: int(100).default(30_000),
  SPAWNER_ADOPT_INTERVAL_MS: int(100).default(60_000),
  SPAWNER_MAX_JSON_BYTES: int(1024).default(16 * MiB),
  /**
   * Extra runnerd settings for every session, `RUNNERD_X=v,RUNNERD_Y=w`
   * (ring size, orphan timeout, ...). The token, root, host and port are the spawner's.
   */
  SPAWNER_RUNNERD_ENV: z
    .string()
    .transform((v, ctx) => {
      const env: Record<string, string> = {};
      for (const pair of v
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "")) {
        const at = pair.indexOf("=");
        const name = at > 0 ? pair.slice(0, at) : "";
        if (!/^RUNNERD_[A-Z_]+$/.test(name) || SPAWNER_OWNED_RUNNERD_SETTINGS.includes(name)) {
          ctx.addIssue({
            code: "custom",
            message: "must be RUNNERD_NAME=value pairs (not TOKEN_SHA256, ROOT, HOST or PORT)",
          });
          return z.NEVER;
        }
        env[name] = pair.slice(at + 1);
      }
      return env;
    })
    .default({}),
  /** The egress policy of a session that asks for none (JSON, as a create's `network`). */
  SPAWNER_EGRESS_DEFAULT: json.pipe(EgressRequestSchema).default({ egress: "deny" }),
  /** The most a session may ask for: `deny`, `allowlist` or `open`. */
  SPAWNER_EGRESS_MAX: EgressModeSchema.default("open"),
  /** Where set, the only host patterns an allowlist may name (each within one of these). */
  SPAWNER_EGRESS_HOSTS: list.pipe(z.array(HostPatternSchema)).optional(),
  /** Where set, the only ports a session's policy may name. */
  SPAWNER_EGRESS_PORTS: list.pipe(z.array(z.string().regex(/^\d+$/).transform(Number).pipe(PortSchema))).optional(),
  /**
   * The secret shared with the egress gateway (services/gateway): sessions' proxy credentials and
   * the gateway's grant lookups derive from it. Without it sessions get no proxy: nothing out.
   */
  SPAWNER_GATEWAY_SECRET: z.string().min(32, "must be at least 32 characters").optional(),
  /**
   * The gateway's proxy as sessions reach it, e.g. http://10.96.0.40:3128. Docker's default: the
   * sessions' bridge address at SPAWNER_GATEWAY_PROXY_PORT (the gateway listens on the host there).
   */
  SPAWNER_GATEWAY_PROXY_URL: z.url().optional(),
  SPAWNER_GATEWAY_PROXY_PORT: int(1, 65_535).default(3128),
  /**
   * Docker: lock each session's network namespace down to the gateway (iptables rules applied by
   * the spawner, which must then run as root with the host's PIDs). Off only where the host
   * enforces the same by other means; sessions otherwise reach the host and the LAN.
   */
  SPAWNER_DOCKER_EGRESS_GUARD: flag.default(true),
  SPAWNER_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
});

const ConfigSchema = ConfigEnvSchema.transform((e, ctx) => {
  if (!e.SPAWNER_DEV_INSECURE && (e.SPAWNER_HMAC_KEYS === undefined || e.SPAWNER_HMAC_KEYS.size === 0)) {
    ctx.addIssue({
      code: "custom",
      path: ["SPAWNER_HMAC_KEYS"],
      message: "is required (or SPAWNER_DEV_INSECURE=1 on loopback)",
    });
  }
  if (e.SPAWNER_DEV_INSECURE && !isLoopback(e.SPAWNER_HOST)) {
    ctx.addIssue({
      code: "custom",
      path: ["SPAWNER_DEV_INSECURE"],
      message: "is only allowed with SPAWNER_HOST on loopback",
    });
  }
  const defaultWorkspace: Workspace = {
    persistent: e.SPAWNER_WORKSPACE_PERSISTENT,
    sizeMb: e.SPAWNER_WORKSPACE_SIZE_MB,
    ...(e.SPAWNER_WORKSPACE_STORAGE_CLASS ? { storageClass: e.SPAWNER_WORKSPACE_STORAGE_CLASS } : {}),
  };
  const pool = (size: number, max: number | undefined) => ({ size, maxStarting: Math.max(1, max ?? size) });
  const profiles = new Map<string, Profile>([
    [
      "default",
      {
        images: e.SPAWNER_IMAGES,
        workspace: defaultWorkspace,
        idle: e.SPAWNER_IDLE_ACTION,
        pool: pool(e.SPAWNER_POOL_SIZE, e.SPAWNER_POOL_MAX_STARTING),
      },
    ],
  ]);
  for (const [name, profile] of Object.entries(e.SPAWNER_PROFILES ?? {})) {
    profiles.set(name, {
      images: profile.images,
      workspace: profile.workspace ?? defaultWorkspace,
      idle: profile.idle ?? e.SPAWNER_IDLE_ACTION,
      pool: pool(profile.pool?.size ?? 0, profile.pool?.max),
    });
  }
  return {
    host: e.SPAWNER_HOST,
    port: e.SPAWNER_PORT,
    metricsHost: e.SPAWNER_METRICS_HOST,
    metricsPort: e.SPAWNER_METRICS_PORT,
    hmacKeys: e.SPAWNER_HMAC_KEYS ?? new Map<string, string>(),
    runnerdSecret: e.SPAWNER_RUNNERD_SECRET,
    devInsecure: e.SPAWNER_DEV_INSECURE,
    deployment: e.SPAWNER_DEPLOYMENT,
    backend:
      e.SPAWNER_BACKEND === "docker"
        ? {
            kind: "docker" as const,
            socket: e.SPAWNER_DOCKER_SOCKET,
            network: e.SPAWNER_DOCKER_NETWORK ?? `sbx-${e.SPAWNER_DEPLOYMENT}`,
            access: e.SPAWNER_RUNNERD_ACCESS,
            pull: e.SPAWNER_PULL_IMAGES,
            egressGuard: e.SPAWNER_DOCKER_EGRESS_GUARD,
            subnet: e.SPAWNER_DOCKER_SUBNET,
          }
        : {
            kind: "kubernetes" as const,
            kubeconfig: e.SPAWNER_KUBECONFIG,
            namespace: e.SPAWNER_KUBE_NAMESPACE,
            imagePullPolicy: e.SPAWNER_KUBE_IMAGE_PULL_POLICY,
            runtimeClassName: e.SPAWNER_KUBE_RUNTIME_CLASS,
            cpuRequestFraction: e.SPAWNER_KUBE_CPU_REQUEST_FRACTION,
            unschedulableGraceMs: e.SPAWNER_KUBE_UNSCHEDULABLE_GRACE_MS,
          },
    terminationGraceSeconds: e.SPAWNER_TERMINATION_GRACE_SECONDS,
    profiles,
    lifetime: {
      defaultTtlMs: e.SPAWNER_DEFAULT_TTL_MS,
      maxTtlMs: e.SPAWNER_MAX_TTL_MS,
      maxLifetimeMs: e.SPAWNER_MAX_LIFETIME_MS,
      defaultIdleTimeoutMs: e.SPAWNER_DEFAULT_IDLE_TIMEOUT_MS,
      maxIdleTimeoutMs: e.SPAWNER_MAX_IDLE_TIMEOUT_MS,
    },
    resources: {
      defaults: { cpus: e.SPAWNER_DEFAULT_CPUS, memoryMb: e.SPAWNER_DEFAULT_MEMORY_MB, pids: e.SPAWNER_DEFAULT_PIDS },
      max: { cpus: e.SPAWNER_MAX_CPUS, memoryMb: e.SPAWNER_MAX_MEMORY_MB, pids: e.SPAWNER_MAX_PIDS },
    },
    capacity: { global: e.SPAWNER_MAX_SESSIONS, perOrg: e.SPAWNER_MAX_SESSIONS_PER_ORG },
    createTimeoutMs: e.SPAWNER_CREATE_TIMEOUT_MS,
    autoResume: e.SPAWNER_AUTO_RESUME,
    poolIntervalMs: e.SPAWNER_POOL_INTERVAL_MS,
    failedRetentionMs: e.SPAWNER_FAILED_RETENTION_MS,
    runnerdConnectTimeoutMs: e.SPAWNER_RUNNERD_CONNECT_TIMEOUT_MS,
    sweepIntervalMs: e.SPAWNER_SWEEP_INTERVAL_MS,
    adoptIntervalMs: e.SPAWNER_ADOPT_INTERVAL_MS,
    maxJsonBytes: e.SPAWNER_MAX_JSON_BYTES,
    runnerdEnv: e.SPAWNER_RUNNERD_ENV,
    egress: {
      default: {
        egress: e.SPAWNER_EGRESS_DEFAULT.egress,
        allow: e.SPAWNER_EGRESS_DEFAULT.allow ?? [],
        ports: e.SPAWNER_EGRESS_DEFAULT.ports ?? [...DEFAULT_EGRESS_PORTS],
      },
      max: e.SPAWNER_EGRESS_MAX,
      hosts: e.SPAWNER_EGRESS_HOSTS,
      ports: e.SPAWNER_EGRESS_PORTS,
    },
    gateway:
      e.SPAWNER_GATEWAY_SECRET === undefined
        ? undefined
        : {
            secret: e.SPAWNER_GATEWAY_SECRET,
            proxyUrl: e.SPAWNER_GATEWAY_PROXY_URL,
            proxyPort: e.SPAWNER_GATEWAY_PROXY_PORT,
          },
    logLevel: e.SPAWNER_LOG_LEVEL,
  };
});

export type Config = z.output<typeof ConfigSchema>;
export type Workspace = z.output<typeof WorkspaceSchema>;
export interface Profile {
  images: string[];
  workspace: Workspace;
  idle: "stop" | "delete";
  /** Warm members kept running for creates of this profile's default image and resources. */
  pool: { size: number; maxStarting: number };
}

/**
 * Secrets published in the README and compose.yml for trying sbx out. They
 * work, but anyone can sign with them, so the spawner says so loudly.
 */
export const PUBLISHED_DEV_SECRETS: ReadonlySet<string> = new Set([
  "sbx-dev-secret-0123456789abcdef",
  "sbx-dev-runnerd-secret-0123456789abcdef",
  "sbx-dev-gateway-secret-0123456789abcdef",
]);

export function usesPublishedSecrets(config: Config): boolean {
  return (
    PUBLISHED_DEV_SECRETS.has(config.runnerdSecret) ||
    (config.gateway !== undefined && PUBLISHED_DEV_SECRETS.has(config.gateway.secret)) ||
    [...config.hmacKeys.values()].some((secret) => PUBLISHED_DEV_SECRETS.has(secret))
  );
}

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Reads and validates the spawner's configuration; errors name the variable, never its value. */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const result = ConfigSchema.safeParse(env);
  if (!result.success) throw new ConfigError(describeEnvIssues(result.error, env));
  return result.data;
}
