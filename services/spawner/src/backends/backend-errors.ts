import type { FailureReason } from "@sbx/protocol";

/**
 * What a backend throws. Backends speak no HTTP: the session service maps
 * these to API errors in one place (sessions/backend-error-map.ts).
 */
export abstract class BackendError extends Error {}

/** The platform (Docker engine, Kubernetes API) cannot be reached or refused an operation it should allow. */
export class BackendUnavailableError extends BackendError {
  override name = "BackendUnavailableError";
}

/** The image is missing and cannot be (or may not be) pulled. */
export class ImageUnavailableError extends BackendError {
  override name = "ImageUnavailableError";
  constructor(
    readonly image: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The session's container or Pod failed before it was ready; nothing of it is left. */
export class StartFailedError extends BackendError {
  override name = "StartFailedError";
  constructor(
    readonly reason: FailureReason,
    options?: ErrorOptions,
  ) {
    super(reason.message, options);
  }
}

/** The create's deadline passed (its AbortSignal fired) before the session had an address; nothing is left. */
export class StartTimeoutError extends BackendError {
  override name = "StartTimeoutError";
}

/** Another create of the same id got there first; its object is not ours to clean up. */
export class BackendConflictError extends BackendError {
  override name = "BackendConflictError";
}

/** The session's object went away while we worked on it (a concurrent delete). */
export class BackendNotFoundError extends BackendError {
  override name = "BackendNotFoundError";
}

/** A stop of a session whose workspace would not outlive it (a Kubernetes emptyDir). */
export class NotStoppableError extends BackendError {
  override name = "NotStoppableError";
}
