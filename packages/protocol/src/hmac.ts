import { createHash, createHmac, randomBytes } from "node:crypto";

/**
 * Request signing for the public API: HMAC-SHA256, under a key chosen by id,
 * over a canonical string of the method, the path with its query, a
 * timestamp, a nonce and the body's sha256. The SDK signs with this module
 * and the spawner verifies with it, so the two can never drift apart.
 */
export const SIGNATURE_HEADERS = {
  keyId: "x-sandbox-key-id",
  timestamp: "x-sandbox-timestamp",
  nonce: "x-sandbox-nonce",
  contentSha256: "x-sandbox-content-sha256",
  signature: "x-sandbox-signature",
} as const;

/** Body hash placeholder, accepted only on streaming upload routes. */
export const UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD";
export const DEFAULT_KEY_ID = "default";
/** How far a request's timestamp may be from the server's clock. */
export const MAX_CLOCK_SKEW_MS = 60_000;
export const MIN_NONCE_LENGTH = 16;
/**
 * How long a signed request stays valid: its timestamp may be up to the skew in the past or in
 * the future, so a nonce (and whatever acted on it) must be remembered this long.
 */
export const REPLAY_WINDOW_MS = 2 * MAX_CLOCK_SKEW_MS;

/**
 * The id of one signed request, the same on every replica: what runnerd remembers so that a
 * request resent with the very same signature acts once, whichever replica it reaches.
 */
export function requestIdOf(keyId: string, nonce: string): string {
  return sha256Hex(`sbx-request:v1\n${keyId}\n${nonce}`);
}

export interface CanonicalRequest {
  method: string;
  /** Path and query exactly as sent, e.g. `/v1/sessions?org=acme`. */
  pathWithQuery: string;
  timestamp: string;
  nonce: string;
  /** Hex sha256 of the body (of the empty string when there is none), or UNSIGNED_PAYLOAD. */
  contentSha256: string;
}

export function canonicalString(request: CanonicalRequest): string {
  return [
    "v1",
    request.method.toUpperCase(),
    request.pathWithQuery,
    request.timestamp,
    request.nonce,
    request.contentSha256,
  ].join("\n");
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

export function signCanonical(secret: string, canonical: string): string {
  return createHmac("sha256", secret).update(canonical).digest("hex");
}

export interface SignOptions {
  keyId?: string | undefined;
  secret: string;
  method: string;
  pathWithQuery: string;
  /** The exact body bytes, or UNSIGNED_PAYLOAD for a streamed upload. */
  body?: string | Uint8Array | typeof UNSIGNED_PAYLOAD | undefined;
  now?: number | undefined;
  nonce?: string | undefined;
}

/** The five signature headers for one request. */
export function signRequest(options: SignOptions): Record<string, string> {
  const contentSha256 =
    options.body === UNSIGNED_PAYLOAD ? UNSIGNED_PAYLOAD : sha256Hex(options.body === undefined ? "" : options.body);
  const timestamp = String(options.now ?? Date.now());
  const nonce = options.nonce ?? randomBytes(16).toString("hex");
  const signature = signCanonical(
    options.secret,
    canonicalString({ method: options.method, pathWithQuery: options.pathWithQuery, timestamp, nonce, contentSha256 }),
  );
  return {
    [SIGNATURE_HEADERS.keyId]: options.keyId ?? DEFAULT_KEY_ID,
    [SIGNATURE_HEADERS.timestamp]: timestamp,
    [SIGNATURE_HEADERS.nonce]: nonce,
    [SIGNATURE_HEADERS.contentSha256]: contentSha256,
    [SIGNATURE_HEADERS.signature]: signature,
  };
}
