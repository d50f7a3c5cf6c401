import type { FailureReason } from "@sbx/protocol";

/** Where a session's runnerd answers. */
export interface Endpoint {
  host: string;
  port: number;
}

/**
 * A session's truth in the two layers both platforms hold: selector labels
 * (short values) and annotations (everything else). See `@sbx/protocol`'s
 * LABELS and ANNOTATIONS.
 */
export interface SessionMeta {
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

/** What a backend is asked to run for one session. */
export interface BackendSessionSpec {
  id: string;
  image: string;
  /** The session's truth; the backend adds its ownership labels (managed, deployment). */
  meta: SessionMeta;
  /** runnerd's environment (runtime-contract.ts): never a secret. */
  runnerdEnv: Record<string, string>;
  resources: { cpus: number; memoryMb: number; pids: number };
  workspace: WorkspaceSpec;
}

/** The session's workspace, from its profile. */
export interface WorkspaceSpec {
  /** Outlives the Pod (a PersistentVolumeClaim); Docker's named volume always outlives its container. */
  persistent: boolean;
  /** Requested size (claim) or size limit (emptyDir), MiB. */
  sizeMb: number;
  storageClass?: string | undefined;
}

/**
 * The lifecycle a backend reports: `starting` (made, not yet running with an
 * address), `running`, `stopping` and `stopped` (its processes ended, its
 * workspace kept, with the lease it had), `terminating` (being deleted),
 * `failed` (it died, or was removed by someone else; the reason says how).
 */
export type BackendState =
  | { phase: "starting" }
  | { phase: "running" }
  | { phase: "stopping" }
  | { phase: "stopped"; at: number | null }
  | { phase: "terminating" }
  | { phase: "failed"; reason: FailureReason };

/** A session as its backend objects show it. */
export interface BackendSession {
  id: string;
  meta: SessionMeta;
  state: BackendState;
  /** Set once it runs and has an address. */
  endpoint: Endpoint | undefined;
  /**
   * The session's own address on its network, where it differs from runnerd's endpoint (a port
   * published on the host): what its connections come from. Otherwise the endpoint's host.
   */
  address?: string | undefined;
}

/** A lock as its holder took it: `token` tells this taking from any later one of the same name. */
export interface HeldLock {
  name: string;
  token: string;
}

/** A warm pool member: a started session without an identity yet, kept for a profile. */
export interface PoolMember {
  memberId: string;
  profile: string;
  image: string;
  /** The image's content id where the platform tells it (a rebuilt tag makes members stale). */
  imageId: string | undefined;
  state: BackendState;
  endpoint: Endpoint | undefined;
  createdAt: number;
  /** The platform's version of the member when it was listed, where it has one: a claim may skip a read. */
  version?: string | undefined;
}

/** An object a backend made for this deployment (for leftovers checks and operators). */
export interface OwnedObject {
  kind: "container" | "volume" | "network" | "pod" | "pvc" | "lease";
  name: string;
  sessionId: string | undefined;
}

/**
 * Told when a session's object changed; `session` is undefined when it is gone. `observedAt`
 * (`performance.now()`) is when the platform was read for this report: reports arrive late, and
 * one read before a fresher account of the session must not overwrite it.
 */
export type SessionListener = (id: string, session: BackendSession | undefined, observedAt: number) => void;

/** What a platform can do that another cannot: the session service asks these, never the kind. */
export interface BackendCapabilities {
  /**
   * Every workspace outlives a stop (a Docker volume always outlives its container); otherwise
   * only a persistent one does (a Kubernetes PVC; an emptyDir goes with its Pod).
   */
  stopsKeepEveryWorkspace: boolean;
  /**
   * A lock can be extended in place (`renewLock`): holders take short-lived locks and renew them,
   * so one that dies blocks others for moments. Without it a lock lives its whole lifetime.
   */
  renewableLocks: boolean;
}

/**
 * One interface, one implementation per platform. The objects' labels and
 * annotations are the session's truth; the spawner keeps no state of its own.
 */
export interface SessionBackend {
  /** The platform's name, as sessions report it; behaviour follows `capabilities`, never this. */
  readonly kind: "docker" | "kubernetes";
  readonly capabilities: BackendCapabilities;
  /** Prepares shared resources (network). Safe to call from several replicas. */
  init(): Promise<void>;
  /** Throws BackendUnavailableError when the platform cannot be reached. */
  ping(): Promise<void>;
  /**
   * The address at which sessions reach the host they run on (the sessions' network's own gateway
   * address), where the platform gives one: where a gateway on the host serves them. Known after init.
   */
  hostAddress(): string | undefined;
  /** Ends what the backend itself keeps running (a platform watch); the sessions are untouched. */
  close(): Promise<void>;
  /**
   * Creates and starts a session and waits until it runs with an address,
   * or until `signal` aborts (StartTimeoutError). All or nothing: on any
   * failure what it made is removed before it throws, except after
   * BackendConflictError, where nothing was made.
   */
  create(spec: BackendSessionSpec, signal: AbortSignal): Promise<BackendSession>;
  find(id: string): Promise<BackendSession | undefined>;
  list(): Promise<BackendSession[]>;
  /**
   * Stops the session, keeping its workspace (and runnerd's state on it). Resolves once its
   * processes have ended. A Kubernetes session needs a persistent workspace.
   */
  stop(id: string): Promise<void>;
  /**
   * Changes amendable annotations (AMENDABLE_ANNOTATIONS: the lease, the egress policy) in the
   * session's own platform objects, running or stopped, where every replica's lookup finds them
   * and nothing inside the session can write. BackendNotFoundError when there is no such session.
   */
  amend(id: string, changes: Readonly<Record<string, string>>): Promise<void>;
  /** Starts a stopped session again, as `create` does (same deadline and failure rules). */
  resume(spec: BackendSessionSpec, signal: AbortSignal): Promise<BackendSession>;
  /**
   * Removes the session and its workspace: gone, or going (Kubernetes
   * deletes Pods in the background). False when there was nothing. Idempotent.
   */
  destroy(id: string): Promise<boolean>;
  /**
   * Follows changes to this deployment's sessions until the returned
   * function is called; reconnects by itself after platform outages.
   */
  watch(listener: SessionListener): () => void;
  /** Every object this deployment owns, whatever state it is in. */
  owned(): Promise<OwnedObject[]>;

  // ---- warm pools: members are made with `create` (meta carrying LABELS.pool) ----

  /** Unclaimed warm pool members of this deployment; `list` and `find` never show them. */
  listPool(): Promise<PoolMember[]>;
  /**
   * Makes a running pool member the session `meta` describes (its id included), atomically: a
   * member is claimed once, however many replicas try. BackendConflictError when it is gone or
   * taken, or when a session of that id exists.
   */
  claim(member: PoolMember, meta: SessionMeta): Promise<BackendSession>;
  /**
   * Takes a lock only one holder has at a time, until released or `ttlMs` passed (a holder that
   * died): the held lock when taken, undefined when another holds it.
   */
  tryLock(name: string, options: { ttlMs: number }): Promise<HeldLock | undefined>;
  /** Gives a lock back; only as it was taken: once it expired and another took it, the other keeps it. */
  unlock(lock: HeldLock): Promise<void>;
  /**
   * Where `capabilities.renewableLocks`: its holder keeps the lock for another `ttlMs` from now;
   * false when it is no longer this holder's. Elsewhere it throws.
   */
  renewLock(lock: HeldLock, ttlMs: number): Promise<boolean>;
  /** The content id of an image as the platform has it now, where it can tell. */
  currentImageId(image: string): Promise<string | undefined>;
}
