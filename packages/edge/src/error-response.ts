import { ApiError } from "@sbx/protocol";
import type { Context } from "hono";
import type { Logger } from "./logger.js";

/**
 * The one place errors become HTTP responses: the envelope with its status
 * and headers; an unforeseen error is logged and answered as INTERNAL
 * without internals.
 */
export function errorResponse(c: Context, error: unknown, log: Logger, service: string): Response {
  if (error instanceof ApiError) {
    if (error.status >= 500) log.warn({ code: error.code, err: error.cause }, error.message);
    return envelopeResponse(error);
  }
  log.error({ err: error, method: c.req.method, path: c.req.path }, "unhandled error");
  return envelopeResponse(new ApiError("INTERNAL", `internal error; see the ${service} log`));
}

export function envelopeResponse(error: ApiError): Response {
  return new Response(JSON.stringify(error.toEnvelope()), {
    status: error.status,
    headers: { ...error.headers, "Content-Type": "application/json" },
  });
}
