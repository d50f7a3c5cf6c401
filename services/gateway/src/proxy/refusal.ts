import { ApiError } from "@sbx/protocol";

/** The answer to a refused proxy request: our error envelope, as an HTTP response head and body. */
export function refusalResponse(error: ApiError): { status: number; headers: Record<string, string>; body: string } {
  const body = JSON.stringify(error.toEnvelope());
  const headers: Record<string, string> = {
    ...error.headers,
    "content-type": "application/json",
    "content-length": String(Buffer.byteLength(body)),
  };
  if (error.status === 407) headers["proxy-authenticate"] = 'Basic realm="sbx"';
  return { status: error.status, headers, body };
}

/** The same, as raw bytes for a socket that has no HTTP response object (a refused CONNECT). */
export function rawRefusal(error: ApiError): string {
  const { status, headers, body } = refusalResponse(error);
  const head = Object.entries({ ...headers, connection: "close" })
    .map(([name, value]) => `${name}: ${value}`)
    .join("\r\n");
  return `HTTP/1.1 ${status} ${REASONS[status] ?? "Refused"}\r\n${head}\r\n\r\n${body}`;
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  407: "Proxy Authentication Required",
  429: "Too Many Requests",
  502: "Bad Gateway",
};

/** An unforeseen failure, answered with the envelope rather than a bare 500. */
export function asApiError(error: unknown): ApiError {
  return error instanceof ApiError ? error : new ApiError("INTERNAL", "the gateway failed to handle the request");
}
