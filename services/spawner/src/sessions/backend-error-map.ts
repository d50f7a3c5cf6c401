import { ApiError } from "@sbx/protocol";
import {
  BackendConflictError,
  BackendError,
  BackendNotFoundError,
  BackendUnavailableError,
  ImageUnavailableError,
  NotStoppableError,
  StartFailedError,
  StartTimeoutError,
} from "../backends/backend-errors.js";

/**
 * The one place a backend's typed errors become API errors (the service
 * maps what it catches during a create; the app's error handler maps the
 * rest). `during` says what the caller was doing: a session that vanishes
 * while it is being created raced a delete (409), not a platform outage.
 * Anything that is not a backend error is returned as it is.
 */
export function apiErrorOf(error: unknown, sessionId: string | undefined, during: "create" | "other"): unknown {
  if (!(error instanceof BackendError)) return error;
  const session = sessionId === undefined ? "the session" : `session ${sessionId}`;
  if (error instanceof BackendUnavailableError) {
    return new ApiError("BACKEND_UNAVAILABLE", error.message, { cause: error, headers: { "Retry-After": "5" } });
  }
  if (error instanceof ImageUnavailableError) {
    return new ApiError("IMAGE_UNAVAILABLE", error.message, { cause: error, details: { image: error.image } });
  }
  if (error instanceof StartFailedError) {
    return new ApiError("SESSION_START_FAILED", `${session} failed to start: ${error.message}`, {
      cause: error,
      details: { reason: error.reason },
    });
  }
  if (error instanceof StartTimeoutError) {
    return new ApiError("RUNNERD_NOT_READY", `${session} did not start in time: ${error.message}`, {
      cause: error,
    });
  }
  if (error instanceof BackendNotFoundError) {
    return during === "create"
      ? new ApiError("SESSION_CONFLICT", `${session} was deleted while it was being created`, {
          cause: error,
        })
      : new ApiError("SESSION_NOT_FOUND", `${session} does not exist`, { cause: error });
  }
  if (error instanceof NotStoppableError) {
    return new ApiError("SESSION_NOT_STOPPABLE", error.message, { cause: error });
  }
  if (error instanceof BackendConflictError) {
    return new ApiError("SESSION_CONFLICT", `${session} is being created or deleted concurrently`, {
      cause: error,
    });
  }
  return error;
}

/** Runs one backend call and maps what it throws. */
export async function backendCall<T>(
  sessionId: string | undefined,
  during: "create" | "other",
  op: () => Promise<T>,
): Promise<T> {
  try {
    return await op();
  } catch (error) {
    throw apiErrorOf(error, sessionId, during);
  }
}
