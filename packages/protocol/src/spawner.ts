import { z } from "zod";
import { EgressPolicySchema, EgressRequestSchema } from "./egress.js";
import { EnvMapSchema } from "./primitives.js";

/** A session id is a DNS label, so it can name containers, Pods and volumes as it is. */
export const SessionIdSchema = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "must be a DNS label: 1-63 of a-z, 0-9 and '-', not at either end");

export const OrgSchema = z
  .string()
  .regex(/^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/, "must be 1-63 of letters, digits, '.', '_', '-'");

export const OwnerSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$/, "must be 1-128 of letters, digits, '.', '_', '@', '+', '-'");

export const ProfileNameSchema = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "must be a DNS label");

export const ImageRefSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9._/:@-]{0,254}$/, "must be an image reference such as sbx-runtime:latest");

export const UserLabelKeySchema = z
  .string()
  .regex(/^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/, "must be 1-63 of a-z, 0-9, '.', '_', '-'");
export const UserLabelValueSchema = z
  .string()
  .regex(/^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/, "must be at most 63 of letters, digits, '.', '_', '-'");

export const UserLabelsSchema = z
  .record(UserLabelKeySchema, UserLabelValueSchema)
  .refine((labels) => Object.keys(labels).length <= 32, "at most 32 labels");

export const ResourcesSchema = z.strictObject({
  cpus: z.number().min(0.05).max(256).optional(),
  memoryMb: z.int().min(64).max(4_194_304).optional(),
  pids: z.int().min(16).max(4_194_304).optional(),
});

export const CreateSessionRequestSchema = z.strictObject({
  id: SessionIdSchema.optional(),
  org: OrgSchema,
  owner: OwnerSchema.optional(),
  profile: ProfileNameSchema.optional(),
  image: ImageRefSchema.optional(),
  /** Session-wide exec environment; handed to runnerd after start, never put in the container spec. */
  env: EnvMapSchema.optional(),
  labels: UserLabelsSchema.optional(),
  resources: ResourcesSchema.optional(),
  /** Lifetime from creation; the spawner bounds it by its configured maximum. */
  ttlMs: z.int().min(1000).optional(),
  idleTimeoutMs: z.int().min(1000).optional(),
  /** Where the session may connect, through the gateway (default: the deployment's; never more than its ceiling). */
  network: EgressRequestSchema.optional(),
});
export type CreateSessionRequest = z.input<typeof CreateSessionRequestSchema>;

/**
 * `starting` until runnerd answers; `ready`; `stopping`, `stopped` and
 * `resuming` around a stop (the workspace, env and exec records are kept;
 * a call to a stopped session resumes it); `terminating` while it is being
 * deleted; `failed` when its container or Pod died (see `reason`). A failed
 * session answers every call with 410 SESSION_FAILED until the sweeper
 * removes it.
 */
export const SessionStateSchema = z.enum([
  "starting",
  "ready",
  "stopping",
  "stopped",
  "resuming",
  "terminating",
  "failed",
]);
export type SessionState = z.infer<typeof SessionStateSchema>;

/** Why a session (or a create) failed, as its backend saw it. */
export const FailureCodeSchema = z.enum([
  /** The kernel killed the session's runnerd (or its init) for exceeding the memory limit. */
  "oom-killed",
  /** The container or Pod exited by itself; `exitCode` says how. */
  "exited",
  /** The image is missing and cannot be pulled. */
  "image-unavailable",
  /** Its container or Pod was removed by someone other than the spawner. */
  "removed",
  /** Kubernetes evicted the Pod (node pressure). */
  "evicted",
  /** Kubernetes could not place the Pod on any node. */
  "unschedulable",
  /** Any other reason the platform gave; the message says which. */
  "other",
]);
export type FailureCode = z.infer<typeof FailureCodeSchema>;

export const FailureReasonSchema = z.object({
  code: FailureCodeSchema,
  message: z.string(),
  exitCode: z.int().optional(),
  /** When the failure happened (epoch ms), or when it was first seen. */
  at: z.number().nullable(),
});
export type FailureReason = z.infer<typeof FailureReasonSchema>;

export const SessionSchema = z.object({
  id: SessionIdSchema,
  org: z.string(),
  owner: z.string().nullable(),
  profile: z.string(),
  image: z.string(),
  state: SessionStateSchema,
  /** Set when `state` is `failed`. */
  reason: FailureReasonSchema.nullable(),
  /** Whether it can be stopped and resumed: its workspace outlives its container or Pod. */
  stoppable: z.boolean(),
  /** When it was stopped (epoch ms), while it is. */
  stoppedAt: z.number().nullable(),
  createdAt: z.number(),
  expiresAt: z.number(),
  idleTimeoutMs: z.number(),
  /** Last API call that reached the session (epoch ms); null when runnerd could not be asked. */
  lastActivityAt: z.number().nullable(),
  labels: z.record(z.string(), z.string()),
  resources: z.object({ cpus: z.number(), memoryMb: z.number(), pids: z.number() }),
  backend: z.enum(["docker", "kubernetes"]),
  /** The egress policy in effect (what the gateway lets through). */
  network: EgressPolicySchema,
});
export type Session = z.infer<typeof SessionSchema>;

export const SessionResponseSchema = z.object({ session: SessionSchema });
export const SessionListResponseSchema = z.object({ sessions: z.array(SessionSchema) });

export const SessionListQuerySchema = z.strictObject({
  org: OrgSchema.optional(),
  owner: OwnerSchema.optional(),
  /** `key=value`, repeatable: sessions must carry every one. */
  label: z
    .union([z.string(), z.array(z.string())])
    .transform((v) => (Array.isArray(v) ? v : [v]))
    .pipe(z.array(z.string().regex(/^[^=]+=.*$/, "must be key=value")))
    .optional(),
});

export const PatchSessionRequestSchema = z
  .strictObject({
    /** New lifetime counted from now. */
    ttlMs: z.int().min(1000).optional(),
    /** New absolute end (epoch ms). */
    expiresAt: z.int().min(0).optional(),
    idleTimeoutMs: z.int().min(1000).optional(),
    /** A new egress policy (within the deployment's ceiling); audited. */
    network: EgressRequestSchema.optional(),
  })
  .refine((r) => r.ttlMs === undefined || r.expiresAt === undefined, {
    message: "give ttlMs or expiresAt, not both",
    path: ["expiresAt"],
  })
  .refine(
    (r) =>
      r.ttlMs !== undefined || r.expiresAt !== undefined || r.idleTimeoutMs !== undefined || r.network !== undefined,
    { message: "give ttlMs, expiresAt, idleTimeoutMs or network" },
  );
export type PatchSessionRequest = z.input<typeof PatchSessionRequestSchema>;
