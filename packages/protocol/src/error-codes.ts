import { z } from "zod";
import { FailureReasonSchema } from "./spawner.js";

/**
 * Every error code any sbx service can answer with, and the HTTP status it
 * travels with. Services throw `ApiError` with one of these codes; the edge
 * maps it to the envelope once. Clients switch on `code`, never on message
 * text. What each code means, who answers it and its `details`: ERROR_CODES.
 */
export const ERROR_STATUS = {
  VALIDATION_FAILED: 400,
  MALFORMED_REQUEST: 400,
  INVALID_JSON: 400,
  INVALID_PATH: 400,
  INVALID_CWD: 400,
  UNAUTHORIZED: 401,
  SIGNATURE_MISSING: 401,
  SIGNATURE_INVALID: 401,
  UNKNOWN_KEY: 401,
  TIMESTAMP_SKEW: 401,
  NONCE_REPLAYED: 401,
  CONTENT_HASH_MISMATCH: 401,
  PATH_OUTSIDE_ROOT: 403,
  PERMISSION_DENIED: 403,
  IMAGE_NOT_ALLOWED: 403,
  EGRESS_NOT_ALLOWED: 403,
  EGRESS_DENIED: 403,
  NOT_FOUND: 404,
  SESSION_NOT_FOUND: 404,
  PROFILE_NOT_FOUND: 404,
  EXEC_NOT_FOUND: 404,
  FILE_NOT_FOUND: 404,
  /** The gateway needs the session's proxy credential (Proxy-Authorization). */
  PROXY_AUTH_REQUIRED: 407,
  REQUEST_TIMEOUT: 408,
  SESSION_CONFLICT: 409,
  SESSION_NOT_READY: 409,
  SESSION_STOPPED: 409,
  SESSION_NOT_STOPPABLE: 409,
  EXEC_EXISTS: 409,
  EXEC_RUNNING: 409,
  EXEC_NOT_RUNNING: 409,
  CURSOR_AHEAD: 409,
  STDIN_CLOSED: 409,
  ALREADY_EXISTS: 409,
  NOT_A_DIRECTORY: 409,
  IS_A_DIRECTORY: 409,
  DIRECTORY_NOT_EMPTY: 409,
  SESSION_FAILED: 410,
  SESSION_TERMINATING: 410,
  PAYLOAD_TOO_LARGE: 413,
  FILE_TOO_LARGE: 413,
  CHECKSUM_MISMATCH: 422,
  ARCHIVE_REFUSED: 422,
  TOO_MANY_EXECS: 429,
  TOO_MANY_REQUESTS: 429,
  CAPACITY_EXCEEDED: 429,
  HEADERS_TOO_LARGE: 431,
  INTERNAL: 500,
  FETCH_FAILED: 502,
  RUNNERD_UNREACHABLE: 502,
  RUNNERD_BAD_REPLY: 502,
  /** The gateway could not open the connection a session asked for (refused, unreachable, timed out). */
  UPSTREAM_UNREACHABLE: 502,
  IMAGE_UNAVAILABLE: 502,
  SESSION_START_FAILED: 502,
  BACKEND_UNAVAILABLE: 503,
  SHUTTING_DOWN: 503,
  RUNNERD_NOT_READY: 504,
  NO_SPACE: 507,
} as const satisfies Record<string, number>;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** True for codes this version knows; newer servers may send codes older clients do not. */
export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_STATUS, code);
}

export function statusOf(code: ErrorCode): number {
  return ERROR_STATUS[code];
}

// ---- details a client acts on --------------------------------------------

/** One problem with a request field, as reported in `details.issues`. */
export const FieldIssueSchema = z.object({
  /** The field as a caller names it (`stdin.mode`, `argv[0]`, a header name), or `(body)`. */
  path: z.string(),
  message: z.string(),
});
export type FieldIssue = z.infer<typeof FieldIssueSchema>;

export const ValidationFailedDetailsSchema = z.object({ issues: z.array(FieldIssueSchema) });

export const SignatureMissingDetailsSchema = z.object({
  /** The signature headers that were absent or empty. */
  missing: z.array(z.string()),
});

export const TimestampSkewDetailsSchema = z.object({
  /** The request's timestamp minus the server's clock: positive when the caller's clock is ahead. */
  skewMs: z.number(),
  /** The server's clock (epoch ms) that the skew was measured against. */
  serverTime: z.number(),
});

export const ProfileNotFoundDetailsSchema = z.object({ profiles: z.array(z.string()) });

export const ImageNotAllowedDetailsSchema = z.object({ allowed: z.array(z.string()) });

export const CursorAheadDetailsSchema = z.union([
  z.object({
    /** The newest event the exec has: re-attach after it, or from the start. */
    lastSeq: z.number(),
  }),
  z.object({
    /** The bytes the exec's stdin has received: write from there. */
    received: z.number(),
  }),
]);

/** A session that died, and how (SESSION_FAILED after it ran, SESSION_START_FAILED before). */
export const SessionFailureDetailsSchema = z.object({ reason: FailureReasonSchema });

export const FileTooLargeDetailsSchema = z.object({ maxBytes: z.number() });

export const ArchiveRefusedDetailsSchema = z.object({ entry: z.string(), reason: z.string() });

export const CapacityExceededDetailsSchema = z.object({
  limit: z.number(),
  /** Which limit was reached: all sessions of the spawner, or those of the caller's org. */
  scope: z.enum(["global", "org"]),
});

export const FetchFailedDetailsSchema = z.object({
  /** The HTTP status the URL answered with. */
  status: z.number(),
});

/** Either the answer passed the size limit, or it was not the JSON runnerd should send. */
export const RunnerdBadReplyDetailsSchema = z.union([
  z.object({ limit: z.number() }),
  z.object({ issues: z.array(FieldIssueSchema) }),
]);

export const ImageUnavailableDetailsSchema = z.object({ image: z.string() });

export const EgressDeniedDetailsSchema = z.object({
  /** Which rule refused: `policy`, `port`, `private-address`, `unresolvable`, `session-state`. */
  rule: z.string(),
  host: z.string(),
  port: z.number(),
});

// ---- who answers each code, and what it means ----------------------------

/**
 * The services that answer with error codes. runnerd's answers to the
 * session routes (`/v1/sessions/:id/execs`, `/env`, `/files`) reach API
 * callers unchanged, through the spawner.
 */
export type ErrorSource = "spawner" | "runnerd" | "gateway";

export interface ErrorCodeFacts {
  /** The services whose own code answers with it (the spawner passing runnerd's answers on does not count). */
  readonly from: readonly ErrorSource[];
  /** One line for the docs' error tables. */
  readonly meaning: string;
  /** The shape of `details`, for codes that carry them; optional where some answers carry none. */
  readonly details?: z.ZodType;
}

const SPAWNER: readonly ErrorSource[] = ["spawner"];
const RUNNERD: readonly ErrorSource[] = ["runnerd"];
const GATEWAY: readonly ErrorSource[] = ["gateway"];
/** Codes both services answer, most of them from the edge they share (HTTP parsing, bodies, routes, the error handler). */
const BOTH: readonly ErrorSource[] = ["spawner", "runnerd"];
/** Codes every service answers: the shared edge's (HTTP parsing, routes, the error handler). */
const ALL: readonly ErrorSource[] = ["spawner", "runnerd", "gateway"];

/**
 * What each code means, who answers it and its `details`. Keyed by
 * ErrorCode, so a code added to ERROR_STATUS without an entry here does not
 * compile. docs/api.md and docs/runnerd.md are written from this table
 * (scripts/error-tables.ts), and a test holds `from` to what the sources throw.
 */
export const ERROR_CODES = {
  VALIDATION_FAILED: {
    from: ALL,
    meaning: "the body, query or a header is invalid; `issues` names each field where it can",
    details: ValidationFailedDetailsSchema.optional(),
  },
  MALFORMED_REQUEST: {
    from: ALL,
    meaning: "the HTTP request itself could not be parsed (refused before any route saw it)",
  },
  INVALID_JSON: { from: ALL, meaning: "a JSON body that does not parse" },
  INVALID_PATH: {
    from: RUNNERD,
    meaning:
      "a path that is empty, holds NUL, is too long or loops through links, or the workspace root where it cannot be",
  },
  INVALID_CWD: { from: RUNNERD, meaning: "an exec's `cwd` that does not exist or is not a directory" },
  UNAUTHORIZED: {
    from: BOTH,
    meaning:
      "runnerd's bearer token is missing or wrong, or a gateway grant lookup is not signed with the shared secret",
  },
  SIGNATURE_MISSING: {
    from: SPAWNER,
    meaning: "the request is not signed: a signature header is missing",
    details: SignatureMissingDetailsSchema,
  },
  SIGNATURE_INVALID: {
    from: SPAWNER,
    meaning: "a signature header is malformed, or the signature does not match the request",
  },
  UNKNOWN_KEY: { from: SPAWNER, meaning: "`X-Sandbox-Key-Id` names no configured key" },
  TIMESTAMP_SKEW: {
    from: SPAWNER,
    meaning: "the timestamp is more than 60 s off the server's clock",
    details: TimestampSkewDetailsSchema,
  },
  NONCE_REPLAYED: {
    from: BOTH,
    meaning:
      "the signed request was already acted on: its nonce was seen within the 60 s window, or the session's runnerd acted on the same signature through another replica",
  },
  CONTENT_HASH_MISMATCH: {
    from: SPAWNER,
    meaning: "the body does not match `X-Sandbox-Content-SHA256` (a streamed upload is aborted, nothing is written)",
  },
  PATH_OUTSIDE_ROOT: {
    from: RUNNERD,
    meaning: "a path that leads outside the workspace, directly or through a symbolic link",
  },
  PERMISSION_DENIED: {
    from: RUNNERD,
    meaning: "the file system refused (permissions, read-only), or the path is runnerd's own `.sbx` directory",
  },
  IMAGE_NOT_ALLOWED: {
    from: SPAWNER,
    meaning: "the image is not on the profile's allow-list",
    details: ImageNotAllowedDetailsSchema,
  },
  EGRESS_NOT_ALLOWED: {
    from: SPAWNER,
    meaning: "a session's `network` asks for more than the deployment allows (`SPAWNER_EGRESS_*`)",
    details: ValidationFailedDetailsSchema,
  },
  EGRESS_DENIED: {
    from: GATEWAY,
    meaning:
      "the gateway refused a session's connection; `rule` names why (the session's policy, a private address, a port)",
    details: EgressDeniedDetailsSchema,
  },
  PROXY_AUTH_REQUIRED: {
    from: GATEWAY,
    meaning: "a request to the gateway without a valid session credential, or from elsewhere than that session",
  },

  NOT_FOUND: { from: ALL, meaning: "no such route (method and path)" },
  SESSION_NOT_FOUND: { from: SPAWNER, meaning: "no session with that id" },
  PROFILE_NOT_FOUND: {
    from: SPAWNER,
    meaning: "no profile with that name",
    details: ProfileNotFoundDetailsSchema,
  },
  EXEC_NOT_FOUND: { from: RUNNERD, meaning: "no exec with that id (never started, or forgotten)" },
  FILE_NOT_FOUND: { from: RUNNERD, meaning: "no such file or directory" },
  REQUEST_TIMEOUT: {
    from: ALL,
    meaning: "the request's headers did not arrive within the server's header timeout",
  },
  SESSION_CONFLICT: {
    from: SPAWNER,
    meaning: "the id exists with another spec, or a create raced a delete of the same id",
  },
  SESSION_NOT_READY: {
    from: SPAWNER,
    meaning: "the session is still starting, or stopping; retry after `Retry-After`",
  },
  SESSION_STOPPED: {
    from: SPAWNER,
    meaning: "the session is stopped and resuming on demand is off: resume it first",
  },
  SESSION_NOT_STOPPABLE: {
    from: SPAWNER,
    meaning: "a stop of a session whose workspace would not outlive it (a Kubernetes emptyDir workspace)",
  },
  EXEC_EXISTS: { from: RUNNERD, meaning: "an exec with that id is still running" },
  EXEC_RUNNING: { from: RUNNERD, meaning: "the exec is still running: cancel it before forgetting it" },
  EXEC_NOT_RUNNING: { from: RUNNERD, meaning: "the exec has exited, so its stdin takes nothing" },
  CURSOR_AHEAD: {
    from: RUNNERD,
    meaning:
      "a replay cursor beyond the newest event (the exec was replaced or runnerd restarted), or a stdin `offset` beyond the bytes received",
    details: CursorAheadDetailsSchema,
  },
  STDIN_CLOSED: { from: RUNNERD, meaning: "the exec's stdin is closed (by a caller, or by the process)" },
  ALREADY_EXISTS: {
    from: RUNNERD,
    meaning: "something exists where the call would create it (a move without `overwrite`)",
  },
  NOT_A_DIRECTORY: { from: RUNNERD, meaning: "the path, or one of its parents, is not a directory" },
  IS_A_DIRECTORY: { from: RUNNERD, meaning: "the path is a directory where a file is needed" },
  DIRECTORY_NOT_EMPTY: { from: RUNNERD, meaning: "the directory is not empty (a delete without `recursive`)" },
  SESSION_FAILED: {
    from: SPAWNER,
    meaning: "the session's container or Pod died (OOM-killed, exited, removed out of band); final",
    details: SessionFailureDetailsSchema,
  },
  SESSION_TERMINATING: { from: SPAWNER, meaning: "the session is being deleted; final" },
  PAYLOAD_TOO_LARGE: {
    from: BOTH,
    meaning:
      "a JSON body over `SPAWNER_MAX_JSON_BYTES` or `RUNNERD_MAX_JSON_BYTES`, or an archive with too many entries",
  },
  FILE_TOO_LARGE: {
    from: RUNNERD,
    meaning: "an upload, extraction or download over its limit (`RUNNERD_MAX_FILE_BYTES`, a fetch's `maxBytes`)",
    details: FileTooLargeDetailsSchema.optional(),
  },
  CHECKSUM_MISMATCH: { from: RUNNERD, meaning: "a fetched file's sha256 is not the `sha256` the request named" },
  ARCHIVE_REFUSED: {
    from: RUNNERD,
    meaning: "an archive entry that may not be extracted, or entries that conflict; nothing is extracted",
    details: ArchiveRefusedDetailsSchema.optional(),
  },
  TOO_MANY_EXECS: {
    from: RUNNERD,
    meaning: "`RUNNERD_MAX_EXECS` execs are already running; with `Retry-After`",
  },
  TOO_MANY_REQUESTS: {
    from: ["runnerd", "gateway"],
    meaning:
      "runnerd holds as many signed requests as it keeps within the replay window, or a session holds as many gateway connections as it may; with `Retry-After`",
  },
  CAPACITY_EXCEEDED: {
    from: SPAWNER,
    meaning: "the session limit is reached, for the spawner or for the org; with `Retry-After`",
    details: CapacityExceededDetailsSchema,
  },
  HEADERS_TOO_LARGE: { from: ALL, meaning: "the request's headers exceed the server's limit" },
  INTERNAL: { from: ALL, meaning: "an unforeseen error; the answering service's log has it" },
  FETCH_FAILED: {
    from: RUNNERD,
    meaning: "a fetch's URL could not be reached, answered with an error status, or broke off",
    details: FetchFailedDetailsSchema.optional(),
  },
  RUNNERD_UNREACHABLE: {
    from: SPAWNER,
    meaning: "the session runs, but its runnerd did not answer in time, broke off, or refused the spawner's call",
  },
  UPSTREAM_UNREACHABLE: {
    from: GATEWAY,
    meaning: "the gateway allowed a session's connection but could not open it (refused, unreachable, timed out)",
  },
  RUNNERD_BAD_REPLY: {
    from: SPAWNER,
    meaning: "runnerd answered a control call (status, env) with more than 64 KiB, or not with the JSON it should",
    details: RunnerdBadReplyDetailsSchema,
  },
  IMAGE_UNAVAILABLE: {
    from: SPAWNER,
    meaning: "the session's image is missing and cannot be pulled",
    details: ImageUnavailableDetailsSchema,
  },
  SESSION_START_FAILED: {
    from: SPAWNER,
    meaning: "a new session's container or Pod failed before its runnerd answered",
    details: SessionFailureDetailsSchema,
  },
  BACKEND_UNAVAILABLE: {
    from: SPAWNER,
    meaning: "the platform (the Docker engine or the Kubernetes API) cannot be reached; with `Retry-After`",
  },
  SHUTTING_DOWN: { from: RUNNERD, meaning: "runnerd is shutting down and starts no more execs" },
  RUNNERD_NOT_READY: {
    from: SPAWNER,
    meaning: "a new or resumed session's runnerd did not answer by the create deadline",
  },
  NO_SPACE: { from: RUNNERD, meaning: "the workspace's device is full, or its quota is used up" },
} satisfies Record<ErrorCode, ErrorCodeFacts>;

type DetailsSchemaOf<C extends ErrorCode> = (typeof ERROR_CODES)[C] extends { details: infer S extends z.ZodType }
  ? S
  : undefined;

/** What `details` holds in an error with code C: undefined for codes that carry none. */
export type ErrorDetails<C extends ErrorCode> =
  DetailsSchemaOf<C> extends z.ZodType ? z.infer<DetailsSchemaOf<C>> : undefined;

interface ApiErrorOptions<D> {
  details?: D;
  headers?: Record<string, string>;
  cause?: unknown;
}

/**
 * The arguments of `new ApiError(code, message, options)`: `details` must
 * have the code's documented shape, and is required where every answer with
 * that code carries it.
 */
export type ApiErrorArgs = {
  [C in ErrorCode]: undefined extends ErrorDetails<C>
    ? [code: C, message: string, options?: ApiErrorOptions<ErrorDetails<C>>]
    : [code: C, message: string, options: ApiErrorOptions<ErrorDetails<C>> & { details: ErrorDetails<C> }];
}[ErrorCode];
