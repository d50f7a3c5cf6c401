import { createHash, timingSafeEqual } from "node:crypto";
import { ApiError } from "@sbx/protocol";
import type { MiddlewareHandler } from "hono";

/**
 * Requires `Authorization: Bearer <token>` whose sha256 equals the configured
 * digest. runnerd holds only the digest, so its environment or memory never
 * reveals a usable token; the comparison is constant-time.
 */
export function bearerAuth(tokenSha256Hex: string): MiddlewareHandler {
  const expected = Buffer.from(tokenSha256Hex, "hex");
  return async (c, next) => {
    const header = c.req.header("authorization");
    const match = header === undefined ? null : /^Bearer ([\x21-\x7e]+)$/.exec(header);
    const token = match?.[1];
    if (token === undefined) {
      throw new ApiError("UNAUTHORIZED", "missing bearer token (Authorization: Bearer <token>)", {
        headers: { "WWW-Authenticate": 'Bearer realm="runnerd"' },
      });
    }
    const actual = createHash("sha256").update(token).digest();
    if (!timingSafeEqual(actual, expected)) {
      throw new ApiError("UNAUTHORIZED", "invalid bearer token", {
        headers: { "WWW-Authenticate": 'Bearer realm="runnerd", error="invalid_token"' },
      });
    }
    await next();
  };
}
