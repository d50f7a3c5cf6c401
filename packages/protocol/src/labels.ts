/**
 * Keys under which a session's truth is stored on its backend object (Docker
 * container labels; Kubernetes labels and annotations). Any spawner replica
 * can rebuild a session from these alone.
 */
export const LABELS = {
  /** Present on every object sbx creates. */
  managed: "sbx.dev/managed",
  /** Which spawner deployment owns the object; others never touch it. */
  deployment: "sbx.dev/deployment",
  sessionId: "sbx.dev/session-id",
  org: "sbx.dev/org",
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
  /** Prefix of the caller's own labels. */
  userPrefix: "sbx.label/",
} as const;
