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
/** Scratch on disk besides the workspace (emptyDir size limits on Kubernetes), in MiB. */
export const DISK_SCRATCH_MB = { tmp: 1024, home: 512 } as const;

const MiB = 1024 * 1024;

/**
 * How a session's memory limit is shared, so that nothing an exec does can
 * take runnerd down with it:
 *
 * - scratch tmpfs (Docker): tmpfs pages count against the container's
 *   memory, so /tmp gets 1/4 of it and $HOME 1/8; filling them ends in
 *   ENOSPC, never in an OOM kill;
 * - runnerd's replay buffers: at most 1/8, split between running execs
 *   and finished ones that keep their output;
 * - the rest (at least 1/2) is the execs' own, and when they exceed it the
 *   kernel kills one of theirs (they run with the highest OOM score).
 */
export function memoryBudget(memoryMb: number): {
  tmpfsMb: { tmp: number; home: number };
  runnerd: Record<string, string>;
} {
  const outputBytes = Math.floor((memoryMb * MiB) / 8);
  const ringBytes = Math.max(256 * 1024, Math.min(4 * MiB, Math.floor(outputBytes / 32)));
  const perHalf = Math.floor(outputBytes / 2 / ringBytes);
  return {
    tmpfsMb: { tmp: Math.max(16, Math.floor(memoryMb / 4)), home: Math.max(16, Math.floor(memoryMb / 8)) },
    runnerd: {
      RUNNERD_RING_BYTES: String(ringBytes),
      RUNNERD_MAX_EXECS: String(Math.max(4, Math.min(64, perHalf))),
      RUNNERD_RETAIN_OUTPUT_EXECS: String(Math.max(2, Math.min(64, perHalf))),
      RUNNERD_CONSUMER_BUFFER_BYTES: String(Math.max(256 * 1024, Math.min(16 * MiB, Math.floor(outputBytes / 8)))),
    },
  };
}

/** Settings runnerd reads that belong to the spawner alone; SPAWNER_RUNNERD_ENV may not set them. */
export const SPAWNER_OWNED_RUNNERD_SETTINGS = ["RUNNERD_TOKEN_SHA256", "RUNNERD_ROOT", "RUNNERD_HOST", "RUNNERD_PORT"];

/**
 * runnerd's whole environment for one session. Never a secret: the token is
 * given only as its sha256, and the session's own env goes to runnerd over
 * its API after start, never into the container or Pod spec.
 */
export function runnerdEnvironment(
  tokenSha256: string,
  memoryMb: number,
  extra: Readonly<Record<string, string>>,
): Record<string, string> {
  return {
    ...memoryBudget(memoryMb).runnerd,
    ...extra,
    RUNNERD_TOKEN_SHA256: tokenSha256,
    RUNNERD_ROOT: WORKSPACE_PATH,
    RUNNERD_HOST: "0.0.0.0",
    RUNNERD_PORT: String(RUNNERD_PORT),
  };
}
