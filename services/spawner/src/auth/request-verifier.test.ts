import { SIGNATURE_HEADERS, signRequest, UNSIGNED_PAYLOAD } from "@sbx/protocol";
import { describe, expect, it } from "vitest";
import { RequestVerifier } from "./request-verifier.js";

const keys = new Map([
  ["old", "old-secret-0123456789abcdef"],
  ["new", "new-secret-0123456789abcdef"],
]);
const NOW = 1_800_000_000_000;

function signed(options: Partial<Parameters<typeof signRequest>[0]> = {}) {
  const headers = signRequest({
    keyId: "new",
    secret: "new-secret-0123456789abcdef",
    method: "GET",
    pathWithQuery: "/v1/sessions",
    now: NOW,
    ...options,
  });
  return {
    method: options.method ?? "GET",
    pathWithQuery: options.pathWithQuery ?? "/v1/sessions",
    header: (name: string) => headers[name],
  };
}

describe("RequestVerifier", () => {
  it("accepts every configured key, so keys can rotate without downtime", () => {
    const verifier = new RequestVerifier(keys, () => NOW);
    expect(verifier.verify(signed(), { allowUnsignedPayload: false }).keyId).toBe("new");
    const old = signed({ keyId: "old", secret: "old-secret-0123456789abcdef" });
    expect(verifier.verify(old, { allowUnsignedPayload: false }).keyId).toBe("old");
  });

  it("accepts a skew of exactly 60 s and refuses 60.001 s either way", () => {
    const verifier = new RequestVerifier(keys, () => NOW);
    expect(() => verifier.verify(signed({ now: NOW - 60_000 }), { allowUnsignedPayload: false })).not.toThrow();
    expect(() => verifier.verify(signed({ now: NOW + 60_000 }), { allowUnsignedPayload: false })).not.toThrow();
    expect(() => verifier.verify(signed({ now: NOW - 60_001 }), { allowUnsignedPayload: false })).toThrow(
      expect.objectContaining({ code: "TIMESTAMP_SKEW" }),
    );
    expect(() => verifier.verify(signed({ now: NOW + 60_001 }), { allowUnsignedPayload: false })).toThrow(
      expect.objectContaining({ code: "TIMESTAMP_SKEW" }),
    );
  });

  it("reports a skew whose serverTime and skewMs add up to the request's timestamp, even on a moving clock", () => {
    let now = NOW;
    // Every reading of this clock is a millisecond later than the one before.
    const verifier = new RequestVerifier(keys, () => now++);
    expect(() => verifier.verify(signed({ now: NOW + 120_000 }), { allowUnsignedPayload: false })).toThrow(
      expect.objectContaining({
        code: "TIMESTAMP_SKEW",
        details: { skewMs: 120_000, serverTime: NOW },
      }),
    );
  });

  it("remembers a nonce for as long as its request could be valid", () => {
    let now = NOW;
    const verifier = new RequestVerifier(keys, () => now);
    const nonce = "n".repeat(32);
    verifier.verify(signed({ nonce }), { allowUnsignedPayload: false });
    now += 59_000;
    expect(() => verifier.verify(signed({ nonce, now }), { allowUnsignedPayload: false })).toThrow(
      expect.objectContaining({ code: "NONCE_REPLAYED" }),
    );
  });

  it("does not spend a nonce on a request whose signature fails", () => {
    const verifier = new RequestVerifier(keys, () => NOW);
    const nonce = "m".repeat(32);
    const forged = signed({ nonce, secret: "wrong-secret-0123456789abcdef" });
    expect(() => verifier.verify(forged, { allowUnsignedPayload: false })).toThrow(
      expect.objectContaining({ code: "SIGNATURE_INVALID" }),
    );
    expect(() => verifier.verify(signed({ nonce }), { allowUnsignedPayload: false })).not.toThrow();
  });

  it("takes UNSIGNED-PAYLOAD only where allowed and names missing headers", () => {
    const verifier = new RequestVerifier(keys, () => NOW);
    const upload = signed({ method: "PUT", body: UNSIGNED_PAYLOAD });
    expect(() => verifier.verify(upload, { allowUnsignedPayload: false })).toThrow(
      expect.objectContaining({ code: "SIGNATURE_INVALID" }),
    );
    expect(verifier.verify(upload, { allowUnsignedPayload: true }).contentSha256).toBe(UNSIGNED_PAYLOAD);
    const partial = signed();
    const missing = {
      ...partial,
      header: (name: string) => (name === SIGNATURE_HEADERS.nonce ? undefined : partial.header(name)),
    };
    try {
      verifier.verify(missing, { allowUnsignedPayload: false });
      expect.unreachable();
    } catch (error) {
      expect(error).toMatchObject({ code: "SIGNATURE_MISSING", details: { missing: [SIGNATURE_HEADERS.nonce] } });
    }
  });
});
