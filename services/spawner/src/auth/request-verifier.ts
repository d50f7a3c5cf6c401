import { timingSafeEqual } from "node:crypto";
import { ExpiringSet } from "@sbx/edge";
import {
  ApiError,
  canonicalString,
  MAX_CLOCK_SKEW_MS,
  MIN_NONCE_LENGTH,
  REPLAY_WINDOW_MS,
  requestIdOf,
  SIGNATURE_HEADERS,
  signCanonical,
  UNSIGNED_PAYLOAD,
} from "@sbx/protocol";

export interface SignedRequest {
  method: string;
  pathWithQuery: string;
  header(name: string): string | undefined;
}

export interface VerifiedRequest {
  keyId: string;
  /** The same on every replica for this signature (`requestIdOf`): what makes a replay act once. */
  requestId: string;
  /** When the caller signed it (epoch ms), within the allowed skew of this server's clock. */
  signedAt: number;
  /** The body hash the signature covers; UNSIGNED_PAYLOAD only where allowed. */
  contentSha256: string;
}

/**
 * Checks a request's HMAC signature: known key, timestamp within the skew,
 * signature over the canonical string (constant-time), nonce not seen before.
 * Each failure has its own code; no message contains a secret or the
 * expected signature. The body hash itself is compared by the caller, who
 * has the body.
 */
export class RequestVerifier {
  /** Nonces seen within the window a signature is valid for: a second use is a replay. */
  private readonly nonces: ExpiringSet;

  constructor(
    private readonly keys: ReadonlyMap<string, string>,
    private readonly now: () => number = Date.now,
  ) {
    // Twice the skew: a timestamp may be up to `skew` in the past or the future.
    this.nonces = new ExpiringSet(REPLAY_WINDOW_MS, 1_000_000);
  }

  verify(request: SignedRequest, options: { allowUnsignedPayload: boolean }): VerifiedRequest {
    const keyId = request.header(SIGNATURE_HEADERS.keyId) ?? "default";
    const timestamp = request.header(SIGNATURE_HEADERS.timestamp);
    const nonce = request.header(SIGNATURE_HEADERS.nonce);
    const contentSha256 = request.header(SIGNATURE_HEADERS.contentSha256);
    const signature = request.header(SIGNATURE_HEADERS.signature);
    const required: Array<[name: string, value: string | undefined]> = [
      [SIGNATURE_HEADERS.timestamp, timestamp],
      [SIGNATURE_HEADERS.nonce, nonce],
      [SIGNATURE_HEADERS.contentSha256, contentSha256],
      [SIGNATURE_HEADERS.signature, signature],
    ];
    const missing = required.flatMap(([name, value]) => (value === undefined || value === "" ? [name] : []));
    if (
      missing.length > 0 ||
      timestamp === undefined ||
      nonce === undefined ||
      contentSha256 === undefined ||
      signature === undefined
    ) {
      throw new ApiError("SIGNATURE_MISSING", `request is not signed: missing ${missing.join(", ")}`, {
        details: { missing },
      });
    }
    const secret = this.keys.get(keyId);
    if (secret === undefined) throw new ApiError("UNKNOWN_KEY", `unknown key id ${JSON.stringify(keyId.slice(0, 64))}`);
    if (!/^\d{1,16}$/.test(timestamp)) {
      throw new ApiError("SIGNATURE_INVALID", `${SIGNATURE_HEADERS.timestamp} must be epoch milliseconds`);
    }
    // One reading of the clock, so that serverTime + skewMs is the timestamp the request carried.
    const serverTime = this.now();
    const skew = Number(timestamp) - serverTime;
    if (Math.abs(skew) > MAX_CLOCK_SKEW_MS) {
      throw new ApiError(
        "TIMESTAMP_SKEW",
        `timestamp is ${Math.round(skew / 1000)} s off the server clock (limit ±60 s)`,
        {
          details: { skewMs: skew, serverTime },
        },
      );
    }
    if (nonce.length < MIN_NONCE_LENGTH || nonce.length > 256 || !/^[\x21-\x7e]+$/.test(nonce)) {
      throw new ApiError("SIGNATURE_INVALID", `${SIGNATURE_HEADERS.nonce} must be 16-256 printable characters`);
    }
    if (contentSha256 === UNSIGNED_PAYLOAD) {
      if (!options.allowUnsignedPayload) {
        throw new ApiError("SIGNATURE_INVALID", `${UNSIGNED_PAYLOAD} is accepted only on streaming upload routes`);
      }
    } else if (!/^[0-9a-f]{64}$/.test(contentSha256)) {
      throw new ApiError("SIGNATURE_INVALID", `${SIGNATURE_HEADERS.contentSha256} must be 64 lower-case hex digits`);
    }
    const expected = signCanonical(
      secret,
      canonicalString({
        method: request.method,
        pathWithQuery: request.pathWithQuery,
        timestamp,
        nonce,
        contentSha256,
      }),
    );
    if (!constantTimeHexEqual(expected, signature)) {
      throw new ApiError("SIGNATURE_INVALID", "signature does not match the request");
    }
    // Full of live nonces: refusing is safe, forgetting one would reopen its replay.
    if (this.nonces.add(nonce, this.now()) !== "added") {
      throw new ApiError("NONCE_REPLAYED", "this nonce was already used; sign every request with a fresh one");
    }
    return { keyId, contentSha256, requestId: requestIdOf(keyId, nonce), signedAt: Number(timestamp) };
  }
}

function constantTimeHexEqual(expected: string, given: string): boolean {
  const a = Buffer.from(expected, "utf8");
  const b = Buffer.from(given.toLowerCase(), "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}
