import { type Server, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { ApiError, type ErrorCode } from "@sbx/protocol";
import type { Logger } from "./logger.js";

/**
 * Requests Node's HTTP parser refuses before any route sees them (headers
 * too large, a malformed request line, headers that never finish) still get
 * the error envelope, not Node's bare status line.
 */
export function answerClientErrors(server: Server, log: Logger): void {
  server.on("clientError", (error: Error & { code?: string }, socket: Duplex) => {
    if (error.code === "ECONNRESET" || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, code, message]: [number, ErrorCode, string] =
      error.code === "HPE_HEADER_OVERFLOW"
        ? [431, "HEADERS_TOO_LARGE", "the request's headers are too large"]
        : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? [408, "REQUEST_TIMEOUT", "the request's headers did not arrive in time"]
          : [400, "MALFORMED_REQUEST", `malformed HTTP request (${error.code ?? error.message})`];
    log.debug({ code: error.code }, "refused a malformed request");
    const body = JSON.stringify(new ApiError(code, message).toEnvelope());
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  });
}
