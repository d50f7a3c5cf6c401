import { z } from "zod";
import { type EgressPolicy, EgressPolicySchema } from "./egress.js";

/**
 * Keys under which a session's truth is stored on its backend objects, in
 * two layers that both platforms can hold:
 *
 * - LABELS select: short values (at most 63 of `[A-Za-z0-9._-]`, starting and
 *   ending with a letter or digit) that a Kubernetes label selector or a
 *   Docker label filter can match.
 * - ANNOTATIONS carry everything else (digests, image references, owners,
 *   lifetimes, the caller's labels), of any length and alphabet.
 *
 * Kubernetes keeps them as labels and annotations; Docker keeps both as
 * container labels. Any spawner replica can rebuild a session from them alone.
 */
export const LABELS = {
  /** Present on every object sbx creates. */
  managed: "sbx.dev/managed",
  /** Which spawner deployment owns the object; others never touch it. */
  deployment: "sbx.dev/deployment",
  sessionId: "sbx.dev/session-id",
  org: "sbx.dev/org",
  /** On a warm pool member (not yet a session): the profile it is kept for. */
  pool: "sbx.dev/pool",
} as const;

export const ANNOTATIONS = {
  owner: "sbx.dev/owner",
  profile: "sbx.dev/profile",
  image: "sbx.dev/image",
  createdAt: "sbx.dev/created-at",
  expiresAt: "sbx.dev/expires-at",
  idleTimeoutMs: "sbx.dev/idle-timeout-ms",
  cpus: "sbx.dev/cpus",
  memoryMb: "sbx.dev/memory-mb",
  pids: "sbx.dev/pids",
  /** Keyed HMAC of the create request, to tell an idempotent repeat from a conflicting one. */
  specDigest: "sbx.dev/spec-digest",
  /** The workspace as created: `persistent` or `ephemeral`, its size in MiB, its storage class. */
  workspace: "sbx.dev/workspace",
  /** A session that started as a warm pool member: the member's id (its runnerd's token derives from it). */
  poolMember: "sbx.dev/pool-member",
  /** On the object that outlives a stopped session: when the spawner stopped it. */
  stoppedAt: "sbx.dev/stopped-at",
  /** The egress policy in effect (JSON; see egress.ts). */
  egress: "sbx.dev/egress",
  /** Prefix of the caller's own labels (`sbx.label/<key>`). */
  userPrefix: "sbx.label/",
} as const;

/** The alphabet and length a selector label value may have on every backend. */
export const LABEL_VALUE_PATTERN = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;

export function isLabelValue(value: string): boolean {
  return LABEL_VALUE_PATTERN.test(value);
}

/**
 * A session's lifetime: when it ends at the latest, and how long it may sit idle. The spawner's
 * alone: it writes it into the session's annotations (at create, at a claim, at a PATCH) and
 * reads it only from there, never from anything the session could write.
 */
export const LeaseSchema = z.strictObject({
  expiresAt: z.int().min(0),
  idleTimeoutMs: z.int().min(1000),
});
export type Lease = z.infer<typeof LeaseSchema>;

/** A lease as the annotations that hold it. */
export function leaseAnnotations(lease: Lease): Record<string, string> {
  return { [ANNOTATIONS.expiresAt]: String(lease.expiresAt), [ANNOTATIONS.idleTimeoutMs]: String(lease.idleTimeoutMs) };
}

/** The lease a session's annotations hold; undefined when they hold none that is whole and valid. */
export function leaseOfAnnotations(annotations: Readonly<Record<string, string>>): Lease | undefined {
  const number = (key: string) => {
    const text = annotations[key];
    return text !== undefined && /^\d{1,16}$/.test(text) ? Number(text) : undefined;
  };
  const parsed = LeaseSchema.safeParse({
    expiresAt: number(ANNOTATIONS.expiresAt),
    idleTimeoutMs: number(ANNOTATIONS.idleTimeoutMs),
  });
  return parsed.success ? parsed.data : undefined;
}

/**
 * The annotations the spawner may change after a create (a PATCH): the lease and the egress
 * policy. Docker keeps their changes on volumes of their own; a backend applies no other key.
 */
export const AMENDABLE_ANNOTATIONS: readonly string[] = [
  ANNOTATIONS.expiresAt,
  ANNOTATIONS.idleTimeoutMs,
  ANNOTATIONS.egress,
];

/** An egress policy as the annotation that holds it. */
export function egressAnnotations(policy: EgressPolicy): Record<string, string> {
  return { [ANNOTATIONS.egress]: JSON.stringify(policy) };
}

/** The egress policy a session's annotations hold; undefined when none is there (or it does not parse). */
export function egressOfAnnotations(annotations: Readonly<Record<string, string>>): EgressPolicy | undefined {
  const text = annotations[ANNOTATIONS.egress];
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  const policy = EgressPolicySchema.safeParse(parsed);
  return policy.success ? policy.data : undefined;
}
