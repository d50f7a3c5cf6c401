import { createHmac } from "node:crypto";
import { ApiError, type CreateSessionRequestSchema, isReservedEnvName } from "@sbx/protocol";
import { customAlphabet } from "nanoid";
import type { z } from "zod";
import type { Config } from "../config.js";
import { resolveEgress } from "./egress-policy.js";
import type { SessionRecord } from "./session-record.js";

export type ParsedCreateRequest = z.output<typeof CreateSessionRequestSchema>;

/** A create request resolved against the configuration: every default applied, every bound checked. */
export interface ResolvedSpec {
  record: SessionRecord;
  env: Record<string, string>;
}

/**
 * Applies profiles, image allow-lists, resource and lifetime defaults and
 * maxima, and computes the spec digest that tells an idempotent repeat of a
 * create from a conflicting one. The digest is keyed (HMAC), so a label
 * never lets anyone test guesses of the session's env values.
 */
/**
 * `requestId`: the signed request's id (see `requestIdOf`); a create without an id gets one
 * derived from it, so the very same request resent (to any replica) names the same session and
 * is answered as a repeat instead of making a second one.
 */
export function resolveSpec(
  request: ParsedCreateRequest,
  config: Config,
  now: number,
  requestId?: string,
): ResolvedSpec {
  const profileName = request.profile ?? "default";
  const profile = config.profiles.get(profileName);
  if (!profile) {
    throw new ApiError("PROFILE_NOT_FOUND", `no profile ${profileName}`, {
      details: { profiles: [...config.profiles.keys()] },
    });
  }
  const image = request.image ?? profile.images[0];
  if (image === undefined || !profile.images.includes(image)) {
    throw new ApiError("IMAGE_NOT_ALLOWED", `image ${request.image} is not allowed for profile ${profileName}`, {
      details: { allowed: profile.images },
    });
  }
  const env = request.env ?? {};
  const reserved = Object.keys(env).filter(isReservedEnvName);
  if (reserved.length > 0) {
    throw invalid(
      reserved.map((name) => ({ path: `env.${name}`, message: "name is reserved" })),
      `env.${reserved[0]}: name is reserved`,
    );
  }
  const { defaults, max } = config.resources;
  const resources = {
    cpus: request.resources?.cpus ?? defaults.cpus,
    memoryMb: request.resources?.memoryMb ?? defaults.memoryMb,
    pids: request.resources?.pids ?? defaults.pids,
  };
  const over = (["cpus", "memoryMb", "pids"] as const).filter((k) => resources[k] > max[k]);
  if (over.length > 0) {
    throw invalid(
      over.map((k) => ({ path: `resources.${k}`, message: `at most ${max[k]}` })),
      `resources.${over[0]} is above the maximum`,
    );
  }
  const ttlMs = request.ttlMs ?? config.lifetime.defaultTtlMs;
  const idleTimeoutMs = request.idleTimeoutMs ?? config.lifetime.defaultIdleTimeoutMs;
  checkLifetime(ttlMs, idleTimeoutMs, config);
  const labels = request.labels ?? {};
  const network = resolveEgress(request.network, config);
  const id = request.id ?? (requestId === undefined ? generateId() : idOfRequest(requestId));
  const specDigest = digest(config.runnerdSecret, {
    org: request.org,
    owner: request.owner ?? null,
    profile: profileName,
    image,
    env: sorted(env),
    labels: sorted(labels),
    resources,
    ttlMs: request.ttlMs ?? null,
    idleTimeoutMs: request.idleTimeoutMs ?? null,
    network: request.network ?? null,
  });
  return {
    record: {
      id,
      org: request.org,
      owner: request.owner ?? null,
      profile: profileName,
      image,
      createdAt: now,
      expiresAt: now + ttlMs,
      idleTimeoutMs,
      resources,
      labels,
      network,
      specDigest,
      runnerdKey: id,
      workspace: {
        persistent: profile.workspace.persistent,
        sizeMb: profile.workspace.sizeMb,
        storageClass: profile.workspace.storageClass,
      },
    },
    env,
  };
}

export function checkLifetime(ttlMs: number | undefined, idleTimeoutMs: number | undefined, config: Config): void {
  const issues = [];
  if (ttlMs !== undefined && ttlMs > config.lifetime.maxTtlMs) {
    issues.push({ path: "ttlMs", message: `at most ${config.lifetime.maxTtlMs}` });
  }
  if (idleTimeoutMs !== undefined && idleTimeoutMs > config.lifetime.maxIdleTimeoutMs) {
    issues.push({ path: "idleTimeoutMs", message: `at most ${config.lifetime.maxIdleTimeoutMs}` });
  }
  const first = issues[0];
  if (first) throw invalid(issues, `${first.path} is above the maximum (${first.message})`);
}

function invalid(issues: Array<{ path: string; message: string }>, summary: string): ApiError {
  return new ApiError("VALIDATION_FAILED", `invalid session request: ${summary}`, { details: { issues } });
}

/** `s-` and 12 random characters of a DNS label's alphabet (~62 bits): sorts nowhere in particular. */
const randomSuffix = customAlphabet("0123456789abcdefghijklmnopqrstuvwxyz", 12);
function generateId(): string {
  return `s-${randomSuffix()}`;
}

/** `s-` and 12 characters taken from the request's id, as a random id looks: every replica derives the same. */
function idOfRequest(requestId: string): string {
  const value = BigInt(`0x${requestId.slice(0, 16)}`) % 36n ** 12n;
  return `s-${value.toString(36).padStart(12, "0")}`;
}

function sorted(map: Record<string, string>): Array<[string, string]> {
  return Object.entries(map).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function digest(secret: string, spec: unknown): string {
  return createHmac("sha256", secret)
    .update(`sbx-spec:v1:${JSON.stringify(spec)}`)
    .digest("hex");
}
