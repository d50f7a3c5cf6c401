import type { V1Pod } from "@kubernetes/client-node";
import type { Logger } from "@sbx/edge";
import { ANNOTATIONS, LABELS } from "@sbx/protocol";
import pRetry, { AbortError } from "p-retry";
import type {
  BackendCapabilities,
  BackendSession,
  BackendSessionSpec,
  HeldLock,
  OwnedObject,
  PoolMember,
  SessionBackend,
  SessionListener,
  SessionMeta,
} from "../backend.js";
import {
  BackendConflictError,
  BackendNotFoundError,
  NotStoppableError,
  StartFailedError,
  StartTimeoutError,
} from "../backend-errors.js";
import { takeLock } from "../core/lock.js";
import { amendable } from "../core/session-meta.js";
import { codeOf, KubeApi, kubeUnavailable, messageOf } from "./kube-api.js";
import { LeaseLockStore } from "./lease-lock.js";
import { type PodSettings, podOf, workspaceClaimOf } from "./pod-spec.js";
import { DELETING_ANNOTATION, removedReason, sessionOfOrphanClaim, sessionOfPod } from "./pod-state.js";
import { PodWatch } from "./pod-watch.js";
import { PoolClaims } from "./pool-claim.js";

export interface KubernetesBackendOptions extends Omit<PodSettings, "namespace"> {
  /** A kubeconfig file; without one: $KUBECONFIG, ~/.kube/config, or the in-cluster service account. */
  kubeconfig: string | undefined;
  namespace: string;
  deployment: string;
  /**
   * How long a new Pod may stay unschedulable before the create fails: 0 fails at once; clusters
   * that scale nodes up, or run near capacity with Pods terminating, want some seconds.
   */
  unschedulableGraceMs: number;
}

/**
 * Sessions as Pods in one namespace: one Pod per session, its workspace an emptyDir or (where the
 * profile asks for one that outlives the Pod) a PersistentVolumeClaim; locked down like the
 * Docker containers (pod-spec.ts). The Pod's labels and annotations are the session's truth, and
 * the claim's once the Pod is gone (a stop); runnerd is reached at the Pod IP. Never uses
 * pods/exec and holds no Secret.
 */
export class KubernetesBackend implements SessionBackend {
  readonly kind = "kubernetes";
  /** An emptyDir goes with its Pod; a Lease can be renewed in place. */
  readonly capabilities: BackendCapabilities = { stopsKeepEveryWorkspace: false, renewableLocks: true };
  private readonly api: KubeApi;
  private readonly pods: PodWatch;
  private readonly locks: LeaseLockStore;
  private readonly pool: PoolClaims;

  constructor(
    private readonly options: KubernetesBackendOptions,
    private readonly log: Logger,
  ) {
    this.api = new KubeApi(options.kubeconfig, options.namespace, options.deployment);
    this.pods = new PodWatch(this.api, log);
    this.locks = new LeaseLockStore(this.api);
    this.pool = new PoolClaims(this.api);
  }

  podName(id: string): string {
    return this.api.podName(id);
  }

  /** The Pod a session of `spec` runs in (benchmarks make the same Pod bare). */
  podOf(spec: BackendSessionSpec, claimName = this.api.claimName(spec.id)): V1Pod {
    return podOf(spec, { pod: this.api.podName(spec.id), claim: claimName }, this.api.ownership(), this.options);
  }

  async init(): Promise<void> {
    await this.ping();
  }

  async ping(): Promise<void> {
    await this.api.call("list session Pods", () =>
      this.api.core.listNamespacedPod({ namespace: this.api.namespace, labelSelector: this.api.selector(), limit: 1 }),
    );
  }

  close(): Promise<void> {
    return this.pods.close();
  }

  hostAddress(): string | undefined {
    // Pods reach the gateway as a Service (SPAWNER_GATEWAY_PROXY_URL), never their node.
    return undefined;
  }

  async create(spec: BackendSessionSpec, signal: AbortSignal): Promise<BackendSession> {
    if (signal.aborted) throw new StartTimeoutError("the create's deadline passed before the session was made");
    let created: V1Pod;
    try {
      created = await this.api.core.createNamespacedPod({ namespace: this.api.namespace, body: this.podOf(spec) });
    } catch (error) {
      if (codeOf(error) === 409) throw new BackendConflictError(`Pod for session ${spec.id} exists`);
      if (codeOf(error) === 422) {
        throw new StartFailedError({ code: "other", message: `the Pod was refused: ${messageOf(error)}`, at: null });
      }
      throw kubeUnavailable("could not create the session Pod", error);
    }
    try {
      if (spec.workspace.persistent) await this.ensureClaim(spec);
      return await this.untilRunning(spec.id, created.metadata?.uid, signal);
    } catch (error) {
      await this.destroy(spec.id).catch((cleanup: unknown) => {
        this.log.error({ sessionId: spec.id, err: cleanup }, "could not remove a failed session's Pod");
      });
      throw error;
    }
  }

  async find(id: string): Promise<BackendSession | undefined> {
    const [pod, claim] = await Promise.all([this.api.readPod(id), this.api.readClaim(id)]);
    if (pod) return sessionOfPod(pod, claim);
    return claim && this.api.isOurs(claim.metadata?.labels) ? sessionOfOrphanClaim(claim) : undefined;
  }

  async list(): Promise<BackendSession[]> {
    const objects = await this.api.listObjects();
    // Unclaimed pool members are not sessions (listPool shows them).
    const pods = objects.pods.filter((p) => p.metadata?.labels?.[LABELS.pool] === undefined);
    const claims = objects.claims.filter((c) => c.metadata?.labels?.[LABELS.pool] === undefined);
    const claimOf = new Map(claims.map((c) => [c.metadata?.labels?.[LABELS.sessionId] ?? "", c]));
    const sessions = pods.flatMap((pod) => {
      const session = sessionOfPod(pod, claimOf.get(pod.metadata?.labels?.[LABELS.sessionId] ?? ""));
      return session ? [session] : [];
    });
    const withPod = new Set(sessions.map((s) => s.id));
    for (const claim of claims) {
      const id = claim.metadata?.labels?.[LABELS.sessionId];
      if (id === undefined || withPod.has(id)) continue;
      const orphan = sessionOfOrphanClaim(claim);
      if (orphan) sessions.push(orphan);
    }
    return sessions;
  }

  async stop(id: string): Promise<void> {
    const claimName = (await this.api.readClaim(id))?.metadata?.name;
    if (!claimName) {
      throw new NotStoppableError(`session ${id} has no workspace claim: its workspace would not outlive its Pod`);
    }
    // The mark on the claim first: every replica then reads the Pod's going as a stop.
    await this.api.call("record the stop on the workspace claim", () =>
      this.api.patchClaim(claimName, { metadata: { annotations: { [ANNOTATIONS.stoppedAt]: String(Date.now()) } } }),
    );
    await this.api.deletePod(id);
    // runnerd keeps its state on the claim as it ends; the Pod's name is free again once it is gone.
    const gone = await this.pods.untilGone(id, (this.options.terminationGracePeriodSeconds + 30) * 1000);
    if (!gone) this.log.warn({ sessionId: id }, "the stopped session's Pod is still going away");
  }

  async amend(id: string, changes: Readonly<Record<string, string>>): Promise<void> {
    const [pod, claim] = await Promise.all([this.api.readPod(id), this.api.readClaim(id)]);
    if (!pod && !claim) throw new BackendNotFoundError(`no session ${id}`);
    const body = { metadata: { annotations: amendable(changes) } };
    // The claim first: it is what a stopped session is read from, and it outlives the Pod.
    const writes = [
      ["PersistentVolumeClaim", claim?.metadata?.name, (name: string) => this.api.patchClaim(name, body)],
      ["Pod", pod?.metadata?.name, (name: string) => this.api.patchPod(name, body)],
    ] as const;
    for (const [kind, name, write] of writes) {
      if (name === undefined) continue;
      try {
        await write(name);
      } catch (error) {
        if (codeOf(error) === 404) throw new BackendNotFoundError(`the ${kind} of session ${id} is gone`);
        throw kubeUnavailable(`could not record a change on the session's ${kind}`, error);
      }
    }
  }

  async resume(given: BackendSessionSpec, signal: AbortSignal): Promise<BackendSession> {
    const claim = await this.api.readClaim(given.id);
    const claimName = claim?.metadata?.name ?? this.api.claimName(given.id);
    // The claim is the stopped session's truth: what was changed while it slept comes back with its Pod.
    const changed = amendable(claim?.metadata?.annotations ?? {});
    const spec = { ...given, meta: { ...given.meta, annotations: { ...given.meta.annotations, ...changed } } };
    // The stopped Pod may still be going away (409 until its name frees up), or another replica
    // resumed it first (then that Pod is followed instead).
    const created = await pRetry(
      async () => {
        try {
          return await this.api.core.createNamespacedPod({
            namespace: this.api.namespace,
            body: this.podOf(spec, claimName),
          });
        } catch (error) {
          if (codeOf(error) !== 409) throw new AbortError(kubeUnavailable("could not create the session Pod", error));
          const existing = await this.find(spec.id);
          if (existing?.state.phase === "running" || existing?.state.phase === "starting") return undefined;
          throw error;
        }
      },
      { retries: Number.POSITIVE_INFINITY, minTimeout: 200, factor: 1, signal },
    ).catch((error: unknown) => {
      throw signal.aborted ? new StartTimeoutError("the session's Pod did not run in time") : error;
    });
    if (created === undefined) return this.untilRunning(spec.id, undefined, signal);
    let running: BackendSession;
    try {
      running = await this.untilRunning(spec.id, created.metadata?.uid, signal);
    } catch (error) {
      // The workspace stays, still marked stopped: only the failed Pod goes.
      await this.api.deletePod(spec.id).catch((cleanup: unknown) => {
        this.log.error({ sessionId: spec.id, err: cleanup }, "could not remove a failed resume's Pod");
      });
      throw error;
    }
    await this.api.call("clear the stop from the workspace claim", () =>
      this.api.patchClaim(claimName, { metadata: { annotations: { [ANNOTATIONS.stoppedAt]: null } } }),
    );
    return running;
  }

  listPool(): Promise<PoolMember[]> {
    return this.pool.list();
  }

  claim(member: PoolMember, meta: SessionMeta): Promise<BackendSession> {
    return this.pool.claim(member, meta);
  }

  tryLock(name: string, options: { ttlMs: number }): Promise<HeldLock | undefined> {
    return takeLock(this.locks, name, options.ttlMs, Date.now);
  }

  unlock(lock: HeldLock): Promise<void> {
    return this.locks.release(lock);
  }

  renewLock(lock: HeldLock, ttlMs: number): Promise<boolean> {
    return this.locks.renew(lock, ttlMs);
  }

  async currentImageId(): Promise<string | undefined> {
    // A node keeps its own copy of each image; which one a new Pod gets is the kubelet's business.
    return undefined;
  }

  async destroy(id: string): Promise<boolean> {
    let existed = await this.api.deletePod(id, true);
    const claimName = (await this.api.readClaim(id, true))?.metadata?.name;
    if (claimName === undefined) return existed;
    try {
      await this.api.core.deleteNamespacedPersistentVolumeClaim({ name: claimName, namespace: this.api.namespace });
      existed = true;
    } catch (error) {
      if (codeOf(error) !== 404) throw kubeUnavailable("could not delete the session's workspace claim", error);
    }
    return existed;
  }

  watch(listener: SessionListener): () => void {
    /** Reports the session as a fresh lookup finds it (stamped with when the lookup began). */
    const lookUp = (id: string, what: string) => {
      const observedAt = performance.now();
      this.find(id).then(
        (session) => listener(id, session, observedAt),
        (error: unknown) => this.log.warn({ sessionId: id, err: error }, `could not look up ${what}`),
      );
    };
    return this.pods.subscribe((event, pod) => {
      const id = pod.metadata?.labels?.[LABELS.sessionId];
      // Unclaimed pool members are not sessions; the pool keeps track of them itself.
      if (id === undefined || pod.metadata?.labels?.[LABELS.pool] !== undefined) return;
      const ours = pod.metadata?.annotations?.[DELETING_ANNOTATION] !== undefined;
      if (event === "delete" && !ours) {
        // Deleted by someone else: say so, rather than let the session just vanish.
        const session = sessionOfPod(pod);
        const failed = { phase: "failed" as const, reason: removedReason(Date.now()) };
        if (session) listener(id, { ...session, state: failed }, performance.now());
      } else if (ours && (event === "delete" || pod.metadata?.deletionTimestamp)) {
        // Going away by our hand: deleted, or stopped, which only its claim tells.
        lookUp(id, "a going Pod's session");
      } else {
        listener(id, sessionOfPod(pod), performance.now());
      }
    });
  }

  async owned(): Promise<OwnedObject[]> {
    const [{ pods, claims }, leases] = await Promise.all([
      this.api.listObjects(),
      this.api.call("list the pools' locks", () =>
        this.api.coordination.listNamespacedLease({
          namespace: this.api.namespace,
          labelSelector: this.api.selector(),
        }),
      ),
    ]);
    const named = (
      kind: OwnedObject["kind"],
      object: { metadata?: { name?: string; labels?: Record<string, string> } },
    ) => ({
      kind,
      name: object.metadata?.name ?? "",
      sessionId: kind === "lease" ? undefined : object.metadata?.labels?.[LABELS.sessionId],
    });
    return [
      ...leases.items.map((l) => named("lease", l)),
      ...pods.map((p) => named("pod", p)),
      ...claims.map((c) => named("pvc", c)),
    ];
  }

  // ---- internals -------------------------------------------------------

  private untilRunning(id: string, uid: string | undefined, signal: AbortSignal): Promise<BackendSession> {
    return this.pods.untilRunning(id, uid, signal, this.options.unschedulableGraceMs);
  }

  private async ensureClaim(spec: BackendSessionSpec): Promise<void> {
    const body = workspaceClaimOf(spec, this.api.claimName(spec.id), this.api.ownership(), this.api.namespace);
    try {
      await this.api.core.createNamespacedPersistentVolumeClaim({ namespace: this.api.namespace, body });
    } catch (error) {
      // Ours already (a repeat after a failed delete): the Pod takes it as it is.
      if (codeOf(error) !== 409) throw kubeUnavailable("could not create the workspace claim", error);
    }
  }
}
