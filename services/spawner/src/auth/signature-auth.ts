import type { HttpBindings } from "@hono/node-server";
import type { Logger } from "@sbx/edge";
import { ApiError, sha256Hex } from "@sbx/protocol";
import type { MiddlewareHandler } from "hono";
import type { RequestVerifier } from "./request-verifier.js";

export type SpawnerEnv = {
  Bindings: HttpBindings;
  Variables: {
    /** The request body, read and checked against the signed hash (not on streaming uploads). */
    body: Buffer | undefined;
    /** On streaming uploads: the hash the signature covers, checked while the body streams. */
    expectedSha256: string | undefined;
    /** The signed request's id and signing time; undefined only in the unauthenticated development mode. */
    signed: { requestId: string; signedAt: number } | undefined;
  };
};

/** Streaming upload routes: the only ones where UNSIGNED-PAYLOAD is accepted and the body is not buffered. */
export function isStreamingUpload(method: string, path: string): boolean {
  return method === "PUT" && /^\/v1\/sessions\/[^/]+\/files\/(content|archive)$/.test(path);
}

/**
 * Verifies the HMAC signature of every request it guards. Bodies of
 * ordinary routes are read here (bounded by the body limit before it) and
 * must hash to what was signed; streaming uploads are checked by the proxy
 * as they stream. With `verifier` undefined (the development switch) nothing
 * is checked and every request is logged as unauthenticated.
 */
export function signatureAuth(verifier: RequestVerifier | undefined, log: Logger): MiddlewareHandler<SpawnerEnv> {
  return async (c, next) => {
    const streaming = isStreamingUpload(c.req.method, c.req.path);
    if (verifier === undefined) {
      log.warn({ method: c.req.method, path: c.req.path }, "UNAUTHENTICATED request (SPAWNER_DEV_INSECURE)");
      c.set("body", streaming ? undefined : Buffer.from(await c.req.arrayBuffer()));
      c.set("expectedSha256", undefined);
      c.set("signed", undefined);
      await next();
      return;
    }
    const verified = verifier.verify(
      {
        method: c.req.method,
        // Exactly as sent: the signature covers the raw path and query.
        pathWithQuery: c.env.incoming.url ?? c.req.path,
        header: (name) => c.req.header(name),
      },
      { allowUnsignedPayload: streaming },
    );
    c.set("signed", { requestId: verified.requestId, signedAt: verified.signedAt });
    if (streaming) {
      c.set("body", undefined);
      c.set("expectedSha256", verified.contentSha256);
    } else {
      const body = Buffer.from(await c.req.arrayBuffer());
      if (sha256Hex(body) !== verified.contentSha256) {
        throw new ApiError("CONTENT_HASH_MISMATCH", "body does not match x-sandbox-content-sha256");
      }
      c.set("body", body);
      c.set("expectedSha256", undefined);
    }
    await next();
  };
}
