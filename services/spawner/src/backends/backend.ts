/** Where a session's runnerd answers. */
export interface Endpoint {
  host: string;
  port: number;
}

/** What a backend is asked to run for one session. */
export interface BackendSessionSpec {
  id: string;
  image: string;
  /** Labels that carry the session's truth (the backend adds its own ownership labels). */
  labels: Record<string, string>;
  /** runnerd's configuration: never a secret (the token is given as its sha256 only). */
  runnerdEnv: Record<string, string>;
  resources: { cpus: number; memoryMb: number; pids: number };
}

/** A session as its backend object shows it. */
export interface BackendSession {
  id: string;
  labels: Record<string, string>;
  /** `running` once the container/Pod runs; `exited` when it stopped by itself. */
  status: "starting" | "running" | "exited";
  endpoint: Endpoint | undefined;
}

/** Another create of the same id got there first; its object is not ours to clean up. */
export class BackendConflictError extends Error {
  override name = "BackendConflictError";
}

/**
 * One interface, one implementation per platform (Docker now, Kubernetes
 * next). The object's labels are the session's truth; the spawner keeps no
 * state of its own.
 */
export interface SessionBackend {
  readonly kind: "docker" | "kubernetes";
  /** Prepares shared resources (network). Safe to call from several replicas. */
  init(): Promise<void>;
  /** Throws when the platform cannot be reached. */
  ping(): Promise<void>;
  /**
   * Creates and starts a session and waits for its runnerd address. All or
   * nothing: on failure everything it made is removed before it throws
   * (except after BackendConflictError, where nothing was made).
   */
  create(spec: BackendSessionSpec, deadline: number): Promise<BackendSession>;
  find(id: string): Promise<BackendSession | undefined>;
  list(): Promise<BackendSession[]>;
  /** Removes the session and its workspace; false when there was nothing. Idempotent. */
  destroy(id: string): Promise<boolean>;
}
