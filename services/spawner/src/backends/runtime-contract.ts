/**
 * What every backend and the session service agree on about the session
 * image: where runnerd listens, who it runs as, where the workspace is, and
 * the environment the spawner hands it. A backend turns this into a
 * container or a Pod; it never invents its own values.
 */

/** runnerd's port inside every session (container port, Pod port). */
export const RUNNERD_PORT = 7070;
/** The workspace mount, runnerd's file root and every exec's default cwd. */
export const WORKSPACE_PATH = "/workspace";
/** The unprivileged user and group of the runtime image; sessions always run as them. */
export const SESSION_UID = 10001;
export const SESSION_GID = 10001;
/** The session user's home: writable scratch on a read-only root filesystem. */
export const HOME_PATH = "/home/sandbox";
/** Scratch space besides the workspace (tmpfs on Docker, emptyDir on Kubernetes), in MiB. */
export const SCRATCH_MB = { tmp: 1024, home: 512 } as const;

/** Settings runnerd reads that belong to the spawner alone; SPAWNER_RUNNERD_ENV may not set them. */
export const SPAWNER_OWNED_RUNNERD_SETTINGS = ["RUNNERD_TOKEN_SHA256", "RUNNERD_ROOT", "RUNNERD_HOST", "RUNNERD_PORT"];

/**
 * runnerd's whole environment for one session. Never a secret: the token is
 * given only as its sha256, and the session's own env goes to runnerd over
 * its API after start, never into the container or Pod spec.
 */
export function runnerdEnvironment(
  tokenSha256: string,
  extra: Readonly<Record<string, string>>,
): Record<string, string> {
  return {
    ...extra,
    RUNNERD_TOKEN_SHA256: tokenSha256,
    RUNNERD_ROOT: WORKSPACE_PATH,
    RUNNERD_HOST: "0.0.0.0",
    RUNNERD_PORT: String(RUNNERD_PORT),
  };
}
