import { z } from "zod";

/**
 * Every error code any sbx service can answer with, and the HTTP status it
 * travels with. Services throw `ApiError` with one of these codes; the edge
 * maps it to the envelope once. Clients switch on `code`, never on message text.
 */
export const ERROR_STATUS = {
  VALIDATION_FAILED: 400,
  /** The HTTP request itself could not be parsed. */
  MALFORMED_REQUEST: 400,
  INVALID_JSON: 400,
  INVALID_PATH: 400,
  INVALID_CWD: 400,
  UNAUTHORIZED: 401,
  /** Signature checks of the public API, one code per failed check. */
  SIGNATURE_MISSING: 401,
  SIGNATURE_INVALID: 401,
  UNKNOWN_KEY: 401,
  TIMESTAMP_SKEW: 401,
  NONCE_REPLAYED: 401,
  CONTENT_HASH_MISMATCH: 401,
  PATH_OUTSIDE_ROOT: 403,
  PERMISSION_DENIED: 403,
  IMAGE_NOT_ALLOWED: 403,
  NOT_FOUND: 404,
  SESSION_NOT_FOUND: 404,
  PROFILE_NOT_FOUND: 404,
  EXEC_NOT_FOUND: 404,
  FILE_NOT_FOUND: 404,
  /** The request's headers did not arrive within the server's header timeout. */
  REQUEST_TIMEOUT: 408,
  SESSION_CONFLICT: 409,
  SESSION_NOT_READY: 409,
  /** A call to a stopped session where resuming on demand is switched off: resume it first. */
  SESSION_STOPPED: 409,
  /** Stop of a session whose workspace would not outlive it (a Kubernetes emptyDir workspace). */
  SESSION_NOT_STOPPABLE: 409,
  EXEC_EXISTS: 409,
  EXEC_RUNNING: 409,
  EXEC_NOT_RUNNING: 409,
  /** A replay cursor beyond the newest event: the exec was replaced or runnerd restarted. */
  CURSOR_AHEAD: 409,
  STDIN_CLOSED: 409,
  ALREADY_EXISTS: 409,
  NOT_A_DIRECTORY: 409,
  IS_A_DIRECTORY: 409,
  DIRECTORY_NOT_EMPTY: 409,
  /** The session's container or Pod died (OOM-killed, exited, removed out of band): see `details.reason`. */
  SESSION_FAILED: 410,
  /** The session is being deleted. */
  SESSION_TERMINATING: 410,
  PAYLOAD_TOO_LARGE: 413,
  FILE_TOO_LARGE: 413,
  /** The request's headers exceed the server's limit. */
  HEADERS_TOO_LARGE: 431,
  CHECKSUM_MISMATCH: 422,
  ARCHIVE_REFUSED: 422,
  TOO_MANY_EXECS: 429,
  CAPACITY_EXCEEDED: 429,
  INTERNAL: 500,
  FETCH_FAILED: 502,
  RUNNERD_UNREACHABLE: 502,
  /** runnerd answered a control call with something the spawner refuses: too large, late, or not the expected JSON. */
  RUNNERD_BAD_REPLY: 502,
  IMAGE_UNAVAILABLE: 502,
  /** A new session's container or Pod failed before runnerd answered: see `details.reason`. */
  SESSION_START_FAILED: 502,
  BACKEND_UNAVAILABLE: 503,
  RUNNERD_NOT_READY: 504,
  SHUTTING_DOWN: 503,
  NO_SPACE: 507,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** True for codes this version knows; newer servers may send codes older clients do not. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_STATUS, code);
}

export const ErrorEnvelopeSchema = z.object({
  error: z.object({
    code: z.string(),
    message: z.string(),
    details: z.unknown().optional(),
  }),
});
export type ErrorEnvelope = z.infer<typeof ErrorEnvelopeSchema>;

/** One problem with a request field, as reported in `details.issues`. */
export interface FieldIssue {
  path: string;
  message: string;
}

export function statusOf(code: ErrorCode): number {
  return ERROR_STATUS[code];
}

/** A foreseen failure that maps to one envelope and status at the HTTP edge. */
export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown;
  readonly headers: Record<string, string>;

  constructor(
    code: ErrorCode,
    message: string,
    options: { details?: unknown; headers?: Record<string, string>; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "ApiError";
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.details = options.details;
    this.headers = options.headers ?? {};
  }

  toEnvelope(): ErrorEnvelope {
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(this.details === undefined ? {} : { details: this.details }),
      },
    };
  }
}

/** Turns zod issues into field paths a caller can act on (`stdin.mode`, `argv[0]`). */
export function fieldIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.map((issue) => ({
    path: formatPath(issue.path),
    message: issue.message,
  }));
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out === "" ? "(body)" : out;
}

/** Parses `input` with `schema`, or throws a 400 VALIDATION_FAILED listing every bad field. */
export function parseOrThrow<S extends z.ZodType>(schema: S, input: unknown, what: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issues = fieldIssues(result.error);
  const first = issues[0];
  const summary = first ? `${first.path}: ${first.message}` : "invalid";
  throw new ApiError("VALIDATION_FAILED", `invalid ${what}: ${summary}`, { details: { issues } });
}
