import {
  type ErrorCode,
  ErrorEnvelopeSchema,
  type FailureReason,
  isErrorCode,
  SessionFailureDetailsSchema,
} from "@sbx/protocol";

/**
 * Every failure the SDK reports: the envelope's `code`, the HTTP `status`
 * and its `details`. Subclasses let callers catch what they can act on
 * (`instanceof SessionNotFoundError`, `CapacityError.retryAfterMs`, ...).
 */
export class SandboxError extends Error {
  override name = "SandboxError";
  /** From Retry-After, when the server said when to try again (capacity, a session still starting). */
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    readonly code: string,
    /** HTTP status; 0 when no response arrived. */
    readonly status: number,
    readonly details?: unknown,
    options?: { cause?: unknown; retryAfterMs?: number | undefined },
  ) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** The signature was refused (missing, wrong key, skew, replayed nonce, tampered body). */
export class UnauthorizedError extends SandboxError {
  override name = "UnauthorizedError";
}
/** The request itself is wrong; `details.issues` lists the fields. */
export class ValidationError extends SandboxError {
  override name = "ValidationError";
}
/** Not allowed: an image off the allow-list, a path outside the workspace. */
export class ForbiddenError extends SandboxError {
  override name = "ForbiddenError";
}
export class NotFoundError extends SandboxError {
  override name = "NotFoundError";
}
export class SessionNotFoundError extends NotFoundError {
  override name = "SessionNotFoundError";
}
export class ExecNotFoundError extends NotFoundError {
  override name = "ExecNotFoundError";
}
export class FileNotFoundError extends NotFoundError {
  override name = "FileNotFoundError";
}
/** The request conflicts with the current state (exists, running, not empty, ...). */
export class ConflictError extends SandboxError {
  override name = "ConflictError";
}
/** The same session id exists with another spec. */
export class SessionConflictError extends ConflictError {
  override name = "SessionConflictError";
}
/** The session is starting or has stopped; retry after `retryAfterMs` if it is starting. */
export class SessionNotReadyError extends ConflictError {
  override name = "SessionNotReadyError";
}
export class PayloadTooLargeError extends SandboxError {
  override name = "PayloadTooLargeError";
}
/** Too many sessions (global or per org) or execs; try again after `retryAfterMs`. */
export class CapacityError extends SandboxError {
  override name = "CapacityError";
}
/** Something behind the spawner failed: runnerd unreachable, image unavailable, a fetch. */
export class UpstreamError extends SandboxError {
  override name = "UpstreamError";
}
export class RunnerdUnreachableError extends UpstreamError {
  override name = "RunnerdUnreachableError";
}
/** The spawner's backend (Docker, Kubernetes) cannot be reached. */
export class BackendUnavailableError extends SandboxError {
  override name = "BackendUnavailableError";
}
/** The session is gone for good: it failed, or it is being deleted. Re-trying will not help. */
export class SessionGoneError extends SandboxError {
  override name = "SessionGoneError";
}
/** The session's container or Pod died (OOM-killed, exited, removed out of band); `reason` says how. */
export class SessionFailedError extends SessionGoneError {
  override name = "SessionFailedError";
  get reason(): FailureReason | undefined {
    return reasonOf(this.details);
  }
}
/** A new session's container or Pod failed before it was ready; `reason` says how. */
export class SessionStartFailedError extends UpstreamError {
  override name = "SessionStartFailedError";
  get reason(): FailureReason | undefined {
    return reasonOf(this.details);
  }
}
/** A new session's runnerd did not answer within the create deadline. */
export class SessionStartTimeoutError extends SandboxError {
  override name = "SessionStartTimeoutError";
}
/** No HTTP response at all: the spawner is unreachable, or the connection broke. */
export class ConnectionError extends SandboxError {
  override name = "ConnectionError";
}

type Plain = new (
  message: string,
  code: string,
  status: number,
  details: unknown,
  options?: { retryAfterMs?: number | undefined },
) => SandboxError;

/** One class per code; keyed by the protocol's code type, so a new code without a class does not compile. */
const BY_CODE: Record<ErrorCode, Plain> = {
  VALIDATION_FAILED: ValidationError,
  MALFORMED_REQUEST: ValidationError,
  HEADERS_TOO_LARGE: ValidationError,
  REQUEST_TIMEOUT: ConnectionError,
  INVALID_JSON: ValidationError,
  INVALID_PATH: ValidationError,
  INVALID_CWD: ValidationError,
  UNAUTHORIZED: UnauthorizedError,
  SIGNATURE_MISSING: UnauthorizedError,
  SIGNATURE_INVALID: UnauthorizedError,
  UNKNOWN_KEY: UnauthorizedError,
  TIMESTAMP_SKEW: UnauthorizedError,
  NONCE_REPLAYED: UnauthorizedError,
  CONTENT_HASH_MISMATCH: UnauthorizedError,
  PATH_OUTSIDE_ROOT: ForbiddenError,
  PERMISSION_DENIED: ForbiddenError,
  IMAGE_NOT_ALLOWED: ForbiddenError,
  EGRESS_NOT_ALLOWED: ForbiddenError,
  EGRESS_DENIED: ForbiddenError,
  PROXY_AUTH_REQUIRED: UnauthorizedError,
  NOT_FOUND: NotFoundError,
  PROFILE_NOT_FOUND: NotFoundError,
  SESSION_NOT_FOUND: SessionNotFoundError,
  EXEC_NOT_FOUND: ExecNotFoundError,
  FILE_NOT_FOUND: FileNotFoundError,
  SESSION_CONFLICT: SessionConflictError,
  SESSION_NOT_READY: SessionNotReadyError,
  SESSION_STOPPED: ConflictError,
  SESSION_NOT_STOPPABLE: ConflictError,
  EXEC_EXISTS: ConflictError,
  EXEC_RUNNING: ConflictError,
  EXEC_NOT_RUNNING: ConflictError,
  CURSOR_AHEAD: ConflictError,
  STDIN_CLOSED: ConflictError,
  ALREADY_EXISTS: ConflictError,
  NOT_A_DIRECTORY: ConflictError,
  IS_A_DIRECTORY: ConflictError,
  DIRECTORY_NOT_EMPTY: ConflictError,
  SESSION_FAILED: SessionFailedError,
  SESSION_TERMINATING: SessionGoneError,
  PAYLOAD_TOO_LARGE: PayloadTooLargeError,
  FILE_TOO_LARGE: PayloadTooLargeError,
  CHECKSUM_MISMATCH: SandboxError,
  ARCHIVE_REFUSED: SandboxError,
  TOO_MANY_EXECS: CapacityError,
  TOO_MANY_REQUESTS: CapacityError,
  CAPACITY_EXCEEDED: CapacityError,
  INTERNAL: SandboxError,
  FETCH_FAILED: UpstreamError,
  RUNNERD_UNREACHABLE: RunnerdUnreachableError,
  RUNNERD_BAD_REPLY: UpstreamError,
  UPSTREAM_UNREACHABLE: UpstreamError,
  IMAGE_UNAVAILABLE: UpstreamError,
  SESSION_START_FAILED: SessionStartFailedError,
  BACKEND_UNAVAILABLE: BackendUnavailableError,
  SHUTTING_DOWN: BackendUnavailableError,
  RUNNERD_NOT_READY: SessionStartTimeoutError,
  NO_SPACE: SandboxError,
};

const BY_STATUS: Record<number, Plain> = {
  400: ValidationError,
  401: UnauthorizedError,
  403: ForbiddenError,
  404: NotFoundError,
  409: ConflictError,
  410: SessionGoneError,
  413: PayloadTooLargeError,
  429: CapacityError,
  502: UpstreamError,
  503: BackendUnavailableError,
  504: SessionStartTimeoutError,
};

/** The typed error for an error response (envelope or not). */
export async function errorFromResponse(response: Response): Promise<SandboxError> {
  const text = await response.text().catch(() => "");
  let code = `HTTP_${response.status}`;
  let message = text.trim() === "" ? `HTTP ${response.status}` : text.trim().slice(0, 500);
  let details: unknown;
  try {
    const envelope = ErrorEnvelopeSchema.safeParse(JSON.parse(text));
    if (envelope.success) {
      code = envelope.data.error.code;
      message = envelope.data.error.message;
      details = envelope.data.error.details;
    }
  } catch {
    // Not JSON (a proxy's error page): keep the status and the text.
  }
  const retryAfterMs = parseRetryAfter(response.headers.get("retry-after"));
  const Type = (isErrorCode(code) ? BY_CODE[code] : undefined) ?? BY_STATUS[response.status] ?? SandboxError;
  return new Type(message, code, response.status, details, { retryAfterMs });
}

function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds * 1000;
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined;
}

function reasonOf(details: unknown): FailureReason | undefined {
  const parsed = SessionFailureDetailsSchema.safeParse(details);
  return parsed.success ? parsed.data.reason : undefined;
}
