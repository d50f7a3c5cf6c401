import { createHmac, timingSafeEqual } from "node:crypto";
import { z } from "zod";

/**
 * The egress contract between the spawner (which decides a session's policy and grants) and the
 * gateway (which enforces them): the policy a create or PATCH asks for, the policy in effect, the
 * grant the gateway reads for a session, and the credentials both derive from one shared secret.
 */

/** `example.com` (that host), or `*.example.com` (any host under it, not itself). */
export const HostPatternSchema = z
  .string()
  .max(253)
  .regex(
    /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
    "must be a lower-case host name, optionally starting with '*.'",
  );

export const EgressModeSchema = z.enum(["deny", "allowlist", "open"]);
export type EgressMode = z.infer<typeof EgressModeSchema>;

export const PortSchema = z.int().min(1).max(65_535);

/**
 * What a create (or a PATCH) asks for: `deny` (nothing out but what other grants open),
 * `allowlist` (the `allow` hosts), `open` (any public host); `ports` (default 80 and 443).
 */
export const EgressRequestSchema = z
  .strictObject({
    egress: EgressModeSchema,
    allow: z.array(HostPatternSchema).max(64).optional(),
    ports: z.array(PortSchema).min(1).max(32).optional(),
  })
  .refine((r) => r.egress !== "allowlist" || (r.allow?.length ?? 0) > 0, {
    message: "an allowlist needs at least one host in `allow`",
    path: ["allow"],
  });
export type EgressRequest = z.input<typeof EgressRequestSchema>;

/** The policy in effect, every field resolved. */
export const EgressPolicySchema = z.object({
  egress: EgressModeSchema,
  allow: z.array(HostPatternSchema),
  ports: z.array(PortSchema),
});
export type EgressPolicy = z.infer<typeof EgressPolicySchema>;

export const DEFAULT_EGRESS_PORTS: readonly number[] = [80, 443];

/** How open a mode is: a session may never ask for more than its deployment allows. */
export function egressRank(mode: EgressMode): number {
  return mode === "deny" ? 0 : mode === "allowlist" ? 1 : 2;
}

/** Whether `host` (lower-case, no trailing dot) matches a pattern. */
export function matchesHostPattern(pattern: string, host: string): boolean {
  if (pattern.startsWith("*.")) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return host === pattern;
}

/** Whether a policy lets a session reach `host:port` (the address it resolves to is judged apart). */
export function egressAllows(policy: EgressPolicy, host: string, port: number): boolean {
  if (!policy.ports.includes(port)) return false;
  if (policy.egress === "open") return true;
  if (policy.egress === "deny") return false;
  return policy.allow.some((pattern) => matchesHostPattern(pattern, host));
}

/** What the gateway reads of a session: whether it may use the gateway now, from where, and how far. */
export const GatewayGrantSchema = z.object({
  sessionId: z.string(),
  /** Only a `running` session's traffic passes; a stopped one's is suspended, a gone one's refused. */
  state: z.enum(["running", "stopped", "other"]),
  /** The session's address: the only one its credentials work from. */
  address: z.string().nullable(),
  egress: EgressPolicySchema,
});
export type GatewayGrant = z.infer<typeof GatewayGrantSchema>;

/** Headers of the gateway's grant lookup at the spawner (`GET /internal/v1/sessions/:id/grant`). */
export const GRANT_HEADERS = { timestamp: "x-sbx-gateway-timestamp", signature: "x-sbx-gateway-signature" } as const;

/** The signature of a grant lookup for `sessionId` at `timestamp` (epoch ms). */
export function grantLookupSignature(secret: string, sessionId: string, timestamp: string): string {
  return createHmac("sha256", secret).update(`sbx-grant:v1\n${sessionId}\n${timestamp}`).digest("hex");
}

/**
 * The credential a session's proxy settings carry (`http://<session id>:<credential>@gateway`):
 * derived from the shared secret, so the spawner hands it out and any gateway replica checks it
 * without storing it; it works only from the session's own address, while the session lives.
 */
export function sessionProxyCredential(secret: string, sessionId: string): string {
  return createHmac("sha256", secret).update(`sbx-proxy:v1\n${sessionId}`).digest("base64url");
}

/** Constant-time comparison of two credentials or signatures. */
export function sameSecret(expected: string, given: string): boolean {
  const a = Buffer.from(expected, "utf8");
  const b = Buffer.from(given, "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}
