import { hostname } from "node:os";
import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  V1MicroTime,
  type V1PersistentVolumeClaim,
  type V1Pod,
  Watch,
} from "@kubernetes/client-node";
import type { Logger } from "@sbx/edge";
import { ANNOTATIONS, LABELS, type Lease, leaseAnnotations, leaseOfAnnotations } from "@sbx/protocol";
import type {
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
  BackendUnavailableError,
  ImageUnavailableError,
  NotStoppableError,
  StartFailedError,
  StartTimeoutError,
} from "../backend-errors.js";
import {
  DISK_SCRATCH_MB,
  HOME_PATH,
  RUNNERD_PORT,
  SESSION_GID,
  SESSION_UID,
  WORKSPACE_PATH,
} from "../runtime-contract.js";
import { DELETING_ANNOTATION, podState, RUNNERD_CONTAINER, removedReason } from "./pod-state.js";
import { PooledKubeConfig } from "./pooled-kube-config.js";

export interface KubernetesBackendOptions {
  /** A kubeconfig file; without one: $KUBECONFIG, ~/.kube/config, or the in-cluster service account. */
  kubeconfig: string | undefined;
  namespace: string;
  deployment: string;
  imagePullPolicy: "IfNotPresent" | "Always" | "Never";
  /** A RuntimeClass (gVisor, Kata) for session Pods, when the cluster offers one. */
  runtimeClassName: string | undefined;
  /** How long a deleted session's processes get to end after SIGTERM. */
  terminationGracePeriodSeconds: number;
  /**
   * The CPU request as a fraction of the session's CPU limit: agents idle most of the time, and
   * CPU (unlike memory) can be shared, so nodes may be packed tighter. 1 gives Guaranteed QoS.
   */
  cpuRequestFraction: number;
  /**
   * How long a new Pod may stay unschedulable before the create fails: 0 fails at once; clusters
   * that scale nodes up, or run near capacity with Pods terminating, want some seconds.
   */
  unschedulableGraceMs: number;
}

const SELECTOR_KEYS: ReadonlySet<string> = new Set(Object.values(LABELS));
const ANNOTATION_PREFIXES = ["sbx.dev/", ANNOTATIONS.userPrefix];

/**
 * Sessions as Pods in one namespace: one Pod per session, its workspace an
 * emptyDir or (where the profile asks for one that outlives the Pod) a
 * PersistentVolumeClaim; locked down like the Docker containers. The Pod's
 * labels and annotations are the session's truth; runnerd is reached at
 * the Pod IP. Never uses pods/exec and holds no Secret.
 */
export class KubernetesBackend implements SessionBackend {
  readonly kind = "kubernetes";
  private readonly config = new PooledKubeConfig();
  private readonly core: CoreV1Api;
  private readonly coordination: CoordinationV1Api;

  constructor(
    private readonly options: KubernetesBackendOptions,
    private readonly log: Logger,
  ) {
    if (options.kubeconfig) this.config.loadFromFile(options.kubeconfig);
    else this.config.loadFromDefault();
    this.core = this.config.makeApiClient(CoreV1Api);
    this.coordination = this.config.makeApiClient(CoordinationV1Api);
  }

  podName(id: string): string {
    return `sbx-${this.options.deployment}-${id}`;
  }

  /** The Lease that is the lock `name`. */
  private leaseName(name: string): string {
    return `sbx-${this.options.deployment}-lock-${name}`;
  }

  claimName(id: string): string {
    return `sbx-${this.options.deployment}-${id}-workspace`;
  }

  async init(): Promise<void> {
    await this.ping();
  }

  async ping(): Promise<void> {
    await this.call("list session Pods", () =>
      this.core.listNamespacedPod({ namespace: this.options.namespace, labelSelector: this.selector(), limit: 1 }),
    );
  }

  async create(spec: BackendSessionSpec, signal: AbortSignal): Promise<BackendSession> {
    if (signal.aborted) throw new StartTimeoutError("the create's deadline passed before the session was made");
    let created: V1Pod;
    try {
      created = await this.core.createNamespacedPod({ namespace: this.options.namespace, body: this.podOf(spec) });
    } catch (error) {
      if (codeOf(error) === 409) throw new BackendConflictError(`Pod for session ${spec.id} exists`);
      if (codeOf(error) === 422) {
        throw new StartFailedError({ code: "other", message: `the Pod was refused: ${messageOf(error)}`, at: null });
      }
      throw unavailable("could not create the session Pod", error);
    }
    try {
      if (spec.workspace.persistent) await this.ensureClaim(spec);
      return await this.waitRunning(spec.id, created.metadata?.resourceVersion, signal);
    } catch (error) {
      await this.destroy(spec.id).catch((cleanup: unknown) => {
        this.log.error({ sessionId: spec.id, err: cleanup }, "could not remove a failed session's Pod");
      });
      throw error;
    }
  }

  async find(id: string): Promise<BackendSession | undefined> {
    const [pod, claim] = await Promise.all([this.readPod(id), this.readClaim(id)]);
    if (pod) return this.fromPod(pod, claim);
    return claim && this.isOurs(claim.metadata?.labels) ? this.fromOrphanClaim(claim) : undefined;
  }

  /**
   * The session's Pod: by its name, or (a claimed pool member's) by its session label. Never a
   * claimed member's Pod by the member's id; an unclaimed member's only when `members` says so.
   */
  private async readPod(id: string, members = false): Promise<V1Pod | undefined> {
    return (await this.podNamed(id, members)) ?? (await this.podLabelled(id));
  }

  /** The Pod named for session `id` (a cold-created session's, or a member's when `members`), if ours. */
  private async podNamed(id: string, members: boolean): Promise<V1Pod | undefined> {
    try {
      const pod = await this.core.readNamespacedPod({ name: this.podName(id), namespace: this.options.namespace });
      const labels = pod.metadata?.labels;
      const member = labels?.[LABELS.pool] !== undefined;
      if (this.isOurs(labels) && labels?.[LABELS.sessionId] === id && (members || !member)) return pod;
    } catch (error) {
      if (codeOf(error) !== 404) throw unavailable("could not read the session Pod", error);
    }
    return undefined;
  }

  /** The Pod labelled with session `id` (a claimed pool member keeps its own name). */
  private async podLabelled(id: string): Promise<V1Pod | undefined> {
    const found = await this.call("find the session Pod", () =>
      this.core.listNamespacedPod({
        namespace: this.options.namespace,
        labelSelector: `${this.selector()},${LABELS.sessionId}=${id},!${LABELS.pool}`,
      }),
    );
    return found.items[0];
  }

  /** The session's workspace claim: by its name, or (a claimed pool member's) by its session label. */
  private async readClaim(id: string, members = false): Promise<V1PersistentVolumeClaim | undefined> {
    try {
      const claim = await this.core.readNamespacedPersistentVolumeClaim({
        name: this.claimName(id),
        namespace: this.options.namespace,
      });
      // A claimed pool member's workspace is its session's now, not the member id's.
      const labels = claim.metadata?.labels;
      if (labels?.[LABELS.sessionId] === id && (members || labels[LABELS.pool] === undefined)) return claim;
    } catch (error) {
      if (codeOf(error) !== 404) throw unavailable("could not read the session's workspace claim", error);
    }
    const found = await this.call("find the session's workspace claim", () =>
      this.core.listNamespacedPersistentVolumeClaim({
        namespace: this.options.namespace,
        labelSelector: `${this.selector()},${LABELS.sessionId}=${id},!${LABELS.pool}`,
      }),
    );
    return found.items[0];
  }

  async list(): Promise<BackendSession[]> {
    const objects = await this.listObjects();
    // Unclaimed pool members are not sessions (listPool shows them).
    const pods = objects.pods.filter((p) => p.metadata?.labels?.[LABELS.pool] === undefined);
    const claims = objects.claims.filter((c) => c.metadata?.labels?.[LABELS.pool] === undefined);
    const claimOf = new Map(claims.map((c) => [c.metadata?.labels?.[LABELS.sessionId] ?? "", c]));
    const sessions = pods.flatMap((pod) => {
      const session = this.fromPod(pod, claimOf.get(pod.metadata?.labels?.[LABELS.sessionId] ?? ""));
      return session ? [session] : [];
    });
    const withPod = new Set(sessions.map((s) => s.id));
    for (const claim of claims) {
      const id = claim.metadata?.labels?.[LABELS.sessionId];
      if (id === undefined || withPod.has(id)) continue;
      const orphan = this.fromOrphanClaim(claim);
      if (orphan) sessions.push(orphan);
    }
    return sessions;
  }

  async stop(id: string): Promise<void> {
    const claim = await this.readClaim(id);
    const claimName = claim?.metadata?.name;
    if (!claimName) {
      throw new NotStoppableError(`session ${id} has no workspace claim: its workspace would not outlive its Pod`);
    }
    // The mark on the claim first: every replica then reads the Pod's going as a stop.
    await this.call("record the stop on the workspace claim", () =>
      this.core.patchNamespacedPersistentVolumeClaim(
        {
          name: claimName,
          namespace: this.options.namespace,
          body: {
            metadata: {
              annotations: { [ANNOTATIONS.stoppedAt]: String(Date.now()) },
            },
          },
        },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      ),
    );
    await this.deletePod(id);
    // runnerd keeps its state on the claim as it ends; the Pod's name is free again once it is gone.
    await this.untilGone(id, (this.options.terminationGracePeriodSeconds + 30) * 1000);
  }

  async setLease(id: string, lease: Lease): Promise<void> {
    const [pod, claim] = await Promise.all([this.readPod(id), this.readClaim(id)]);
    if (!pod && !claim) throw new BackendNotFoundError(`no session ${id}`);
    const patch = (kind: "Pod" | "PersistentVolumeClaim", name: string) => {
      const request = {
        name,
        namespace: this.options.namespace,
        body: { metadata: { annotations: leaseAnnotations(lease) } },
      };
      const options = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
      return kind === "Pod"
        ? this.core.patchNamespacedPod(request, options)
        : this.core.patchNamespacedPersistentVolumeClaim(request, options);
    };
    // The claim first: it is what a stopped session is read from, and it outlives the Pod.
    for (const [kind, name] of [
      ["PersistentVolumeClaim", claim?.metadata?.name],
      ["Pod", pod?.metadata?.name],
    ] as const) {
      if (name === undefined) continue;
      try {
        await patch(kind, name);
      } catch (error) {
        if (codeOf(error) === 404) throw new BackendNotFoundError(`the ${kind} of session ${id} is gone`);
        throw unavailable(`could not record the lease on the session's ${kind}`, error);
      }
    }
  }

  async resume(given: BackendSessionSpec, signal: AbortSignal): Promise<BackendSession> {
    const claim = await this.readClaim(given.id);
    const claimName = claim?.metadata?.name ?? this.claimName(given.id);
    // The claim is the stopped session's truth: a lease set while it slept comes back with its Pod.
    const lease = leaseOfAnnotations(claim?.metadata?.annotations ?? {});
    const spec = lease
      ? { ...given, meta: { ...given.meta, annotations: { ...given.meta.annotations, ...leaseAnnotations(lease) } } }
      : given;
    let created: V1Pod | undefined;
    while (!created) {
      if (signal.aborted) throw new StartTimeoutError("the session's Pod did not run in time");
      try {
        created = await this.core.createNamespacedPod({
          namespace: this.options.namespace,
          body: this.podOf(spec, claimName),
        });
      } catch (error) {
        if (codeOf(error) !== 409) throw unavailable("could not create the session Pod", error);
        const existing = await this.find(spec.id);
        // Another replica resumed it first: follow that Pod.
        if (existing?.state.phase === "running" || existing?.state.phase === "starting") {
          return this.waitRunning(spec.id, undefined, signal);
        }
        // The stopped Pod is still going away: its name frees up in a moment.
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    let running: BackendSession;
    try {
      running = await this.waitRunning(spec.id, created.metadata?.resourceVersion, signal);
    } catch (error) {
      // The workspace stays, still marked stopped: only the failed Pod goes.
      await this.deletePod(spec.id).catch((cleanup: unknown) => {
        this.log.error({ sessionId: spec.id, err: cleanup }, "could not remove a failed resume's Pod");
      });
      throw error;
    }
    await this.call("clear the stop from the workspace claim", () =>
      this.core.patchNamespacedPersistentVolumeClaim(
        {
          name: claimName,
          namespace: this.options.namespace,
          body: { metadata: { annotations: { [ANNOTATIONS.stoppedAt]: null } } },
        },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      ),
    );
    return running;
  }

  async listPool(): Promise<PoolMember[]> {
    const pods = await this.call("list pool members", () =>
      this.core.listNamespacedPod({
        namespace: this.options.namespace,
        labelSelector: `${this.selector()},${LABELS.pool}`,
      }),
    );
    return pods.items.flatMap((pod) => {
      const labels = pod.metadata?.labels ?? {};
      const memberId = labels[LABELS.sessionId];
      const profile = labels[LABELS.pool];
      if (memberId === undefined || profile === undefined) return [];
      const { state, endpoint } = podState(pod);
      const annotations = pod.metadata?.annotations ?? {};
      return [
        {
          memberId,
          profile,
          image: annotations[ANNOTATIONS.image] ?? pod.spec?.containers[0]?.image ?? "",
          imageId: undefined,
          state,
          endpoint,
          createdAt: Number(annotations[ANNOTATIONS.createdAt] ?? 0),
          version: pod.metadata?.resourceVersion,
        },
      ];
    });
  }

  async claim(member: PoolMember, meta: SessionMeta): Promise<BackendSession> {
    const { memberId } = member;
    const id = meta.labels[LABELS.sessionId];
    if (id === undefined) throw new Error("a claim needs the session's id");
    // The member as listed is usually still current: its version from the listing saves a read, and
    // only a refused patch (the member changed since, or another replica claimed it) reads it again.
    // Both ways a session can hold the id (its Pod's name, a claimed member's label), asked at once.
    const [named, labelled, listed] = await Promise.all([
      this.podNamed(id, false),
      this.podLabelled(id),
      member.version === undefined ? this.readMember(memberId) : undefined,
    ]);
    if (named !== undefined || labelled !== undefined) throw new BackendConflictError(`a session ${id} exists`);
    let version = listed ?? member.version;
    let claimed: V1Pod | undefined;
    const labels = { ...meta.labels, [LABELS.pool]: null };
    const annotations = { ...meta.annotations, [ANNOTATIONS.poolMember]: memberId };
    for (let attempt = 0; claimed === undefined; attempt++) {
      // The member becomes the session: its labels and annotations, in one patch that only applies
      // to the version read, so of two replicas claiming it at once one wins, the other is refused.
      try {
        claimed = await this.core.patchNamespacedPod(
          {
            name: this.podName(memberId),
            namespace: this.options.namespace,
            body: { metadata: { resourceVersion: version, labels, annotations } },
          },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        );
      } catch (error) {
        if (codeOf(error) === 404) throw new BackendConflictError(`pool member ${memberId} is gone`);
        if (codeOf(error) !== 409) throw unavailable("could not claim a pool member", error);
        if (attempt > 0) throw new BackendConflictError(`pool member ${memberId} was claimed`);
        version = await this.readMember(memberId);
      }
    }
    // Its workspace claim (a persistent workspace) follows it; an emptyDir workspace has none to patch.
    const persistent = claimed.spec?.volumes?.some((v) => v.name === "workspace" && v.persistentVolumeClaim);
    if (persistent) {
      try {
        await this.core.patchNamespacedPersistentVolumeClaim(
          {
            name: this.claimName(memberId),
            namespace: this.options.namespace,
            body: { metadata: { labels, annotations } },
          },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        );
      } catch (error) {
        if (codeOf(error) !== 404) throw unavailable("could not claim a pool member's workspace", error);
      }
    }
    const session = this.fromPod(claimed);
    if (!session) throw new BackendNotFoundError(`the claimed session ${id} is gone`);
    return session;
  }

  /** The resourceVersion of a pool member that is still unclaimed; a conflict when it is gone or claimed. */
  private async readMember(memberId: string): Promise<string> {
    let pod: V1Pod;
    try {
      pod = await this.core.readNamespacedPod({ name: this.podName(memberId), namespace: this.options.namespace });
    } catch (error) {
      if (codeOf(error) === 404) throw new BackendConflictError(`pool member ${memberId} is gone`);
      throw unavailable("could not read a pool member", error);
    }
    if (pod.metadata?.labels?.[LABELS.pool] === undefined) {
      throw new BackendConflictError(`pool member ${memberId} was claimed`);
    }
    const version = pod.metadata.resourceVersion;
    if (version === undefined) throw unavailable("a pool member has no resourceVersion", undefined);
    return version;
  }

  async tryLock(name: string, options: { ttlMs: number; image: string }): Promise<HeldLock | undefined> {
    const lease = this.leaseName(name);
    const namespace = this.options.namespace;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const made = await this.coordination.createNamespacedLease({
          namespace,
          body: {
            metadata: { name: lease, labels: this.ownership() },
            spec: {
              holderIdentity: `${hostname()}-${process.pid}`,
              leaseDurationSeconds: Math.ceil(options.ttlMs / 1000),
              acquireTime: new V1MicroTime(),
              renewTime: new V1MicroTime(),
            },
          },
        });
        // Its uid tells this taking from a later lease of the same name.
        const uid = made.metadata?.uid;
        if (uid === undefined) throw unavailable("a lock was taken without a uid", undefined);
        return { name, token: uid };
      } catch (error) {
        if (codeOf(error) !== 409) throw unavailable("could not take a lock", error);
      }
      // Held: by a live holder, or by one that died (then the lease has expired and is broken).
      const held = await this.coordination.readNamespacedLease({ name: lease, namespace }).catch((error: unknown) => {
        if (codeOf(error) === 404) return undefined;
        throw unavailable("could not read a lock", error);
      });
      const renewed = held?.spec?.renewTime ? new Date(held.spec.renewTime).getTime() : 0;
      const expires = renewed + (held?.spec?.leaseDurationSeconds ?? 0) * 1000;
      if (held && expires > Date.now()) return undefined;
      if (held) {
        // Broken only as it was read: a lease another replica has just taken anew stays.
        await this.coordination
          .deleteNamespacedLease({
            name: lease,
            namespace,
            body: { preconditions: { resourceVersion: held.metadata?.resourceVersion ?? "" } },
          })
          .catch((error: unknown) => {
            if (codeOf(error) !== 404 && codeOf(error) !== 409) throw unavailable("could not break a lock", error);
          });
      }
    }
    return undefined;
  }

  async unlock(lock: HeldLock): Promise<void> {
    try {
      // Only the lease this holder made: once it expired and another replica took the name, the
      // precondition fails (409) and the other's lease stays.
      await this.coordination.deleteNamespacedLease({
        name: this.leaseName(lock.name),
        namespace: this.options.namespace,
        body: { preconditions: { uid: lock.token } },
      });
    } catch (error) {
      if (codeOf(error) !== 404 && codeOf(error) !== 409) throw unavailable("could not release a lock", error);
    }
  }

  async renewLock(lock: HeldLock, ttlMs: number): Promise<boolean> {
    try {
      // The uid in the patch is a precondition: a lease another replica has taken since is not
      // renewed (the API server refuses the patch as changing an immutable field, 422).
      await this.coordination.patchNamespacedLease(
        {
          name: this.leaseName(lock.name),
          namespace: this.options.namespace,
          body: {
            metadata: { uid: lock.token },
            spec: { renewTime: new V1MicroTime(), leaseDurationSeconds: Math.ceil(ttlMs / 1000) },
          },
        },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      return true;
    } catch (error) {
      const code = codeOf(error);
      if (code === 404 || code === 409 || code === 422) return false;
      throw unavailable("could not renew a lock", error);
    }
  }

  async currentImageId(): Promise<string | undefined> {
    // A node keeps its own copy of each image; which one a new Pod gets is the kubelet's business.
    return undefined;
  }

  async destroy(id: string): Promise<boolean> {
    const namespace = this.options.namespace;
    let existed = await this.deletePod(id, true);
    const claimName = (await this.readClaim(id, true))?.metadata?.name;
    if (claimName === undefined) return existed;
    try {
      await this.core.deleteNamespacedPersistentVolumeClaim({ name: claimName, namespace });
      existed = true;
    } catch (error) {
      if (codeOf(error) !== 404) throw unavailable("could not delete the session's workspace claim", error);
    }
    return existed;
  }

  watch(listener: SessionListener): () => void {
    const path = `/api/v1/namespaces/${this.options.namespace}/pods`;
    const informer = makeInformer<V1Pod>(
      this.config,
      path,
      () => this.core.listNamespacedPod({ namespace: this.options.namespace, labelSelector: this.selector() }),
      this.selector(),
    );
    /** Reports the session as a fresh lookup finds it (stamped with when the lookup began). */
    const lookUp = (id: string, what: string) => {
      const observedAt = performance.now();
      this.find(id).then(
        (session) => listener(id, session, observedAt),
        (error: unknown) => this.log.warn({ sessionId: id, err: error }, `could not look up ${what}`),
      );
    };
    const report = (pod: V1Pod) => {
      const id = pod.metadata?.labels?.[LABELS.sessionId];
      // Unclaimed pool members are not sessions; the pool keeps track of them itself.
      if (id === undefined || pod.metadata?.labels?.[LABELS.pool] !== undefined) return;
      // A Pod going away may be a stop, which only its claim tells.
      if (pod.metadata?.deletionTimestamp && pod.metadata.annotations?.[DELETING_ANNOTATION] !== undefined) {
        lookUp(id, "a going Pod's session");
      } else {
        listener(id, this.fromPod(pod), performance.now());
      }
    };
    informer.on("add", report);
    informer.on("update", report);
    informer.on("delete", (pod) => {
      const id = pod.metadata?.labels?.[LABELS.sessionId];
      if (id === undefined || pod.metadata?.labels?.[LABELS.pool] !== undefined) return;
      if (pod.metadata?.annotations?.[DELETING_ANNOTATION] !== undefined) {
        // Ours: deleted, or stopped (then the claim says so).
        lookUp(id, "a deleted Pod's session");
        return;
      }
      // Deleted by someone else: say so, rather than let the session just vanish.
      const session = this.fromPod(pod);
      if (session) {
        listener(id, { ...session, state: { phase: "failed", reason: removedReason(Date.now()) } }, performance.now());
      }
    });
    let stopped = false;
    informer.on("error", (error) => {
      if (stopped) return;
      this.log.warn({ err: error }, "Kubernetes watch broke; following again in 1 s");
      setTimeout(() => {
        if (!stopped) void informer.start().catch((again: unknown) => this.log.warn({ err: again }, "watch restart"));
      }, 1000).unref();
    });
    void informer.start().catch((error: unknown) => this.log.warn({ err: error }, "could not start the Pod watch"));
    return () => {
      stopped = true;
      void informer.stop();
    };
  }

  async owned(): Promise<OwnedObject[]> {
    const [{ pods, claims }, leases] = await Promise.all([
      this.listObjects(),
      this.coordination
        .listNamespacedLease({ namespace: this.options.namespace, labelSelector: this.selector() })
        .catch((error: unknown) => {
          throw unavailable("could not list the pools' locks", error);
        }),
    ]);
    return [
      ...leases.items.map((l) => ({ kind: "lease" as const, name: l.metadata?.name ?? "", sessionId: undefined })),
      ...pods.map((p) => ({
        kind: "pod" as const,
        name: p.metadata?.name ?? "",
        sessionId: p.metadata?.labels?.[LABELS.sessionId],
      })),
      ...claims.map((c) => ({
        kind: "pvc" as const,
        name: c.metadata?.name ?? "",
        sessionId: c.metadata?.labels?.[LABELS.sessionId],
      })),
    ];
  }

  // ---- internals -------------------------------------------------------

  /** Deletes the session's Pod, marked first so every replica can tell our delete from someone else's. */
  private async deletePod(id: string, members = false): Promise<boolean> {
    const namespace = this.options.namespace;
    const name = (await this.readPod(id, members))?.metadata?.name;
    if (name === undefined) return false;
    try {
      await this.core.patchNamespacedPod(
        { name, namespace, body: { metadata: { annotations: { [DELETING_ANNOTATION]: "true" } } } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      await this.core.deleteNamespacedPod({ name, namespace });
      return true;
    } catch (error) {
      if (codeOf(error) !== 404) throw unavailable("could not delete the session Pod", error);
      return false;
    }
  }

  /** Waits until the session's Pod is gone (or `ms` passed). */
  private async untilGone(id: string, ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if ((await this.readPod(id)) === undefined) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    this.log.warn({ sessionId: id }, "the stopped session's Pod is still going away");
  }

  /** This deployment's Pods and workspace claims. */
  private async listObjects(): Promise<{ pods: V1Pod[]; claims: V1PersistentVolumeClaim[] }> {
    const [pods, claims] = await Promise.all([
      this.call("list session Pods", () =>
        this.core.listNamespacedPod({ namespace: this.options.namespace, labelSelector: this.selector() }),
      ),
      this.call("list workspace claims", () =>
        this.core.listNamespacedPersistentVolumeClaim({
          namespace: this.options.namespace,
          labelSelector: this.selector(),
        }),
      ),
    ]);
    return { pods: pods.items, claims: claims.items };
  }

  /** The session's Pod: locked down, runnerd's environment only, limits from the request. */
  podOf(spec: BackendSessionSpec, claimName = this.claimName(spec.id)): V1Pod {
    const cpuLimitMilli = Math.round(spec.resources.cpus * 1000);
    const cpuRequestMilli = Math.max(10, Math.round(cpuLimitMilli * this.options.cpuRequestFraction));
    const memory = `${spec.resources.memoryMb}Mi`;
    const scratch = (sizeMb: number) => ({ sizeLimit: `${sizeMb}Mi` });
    return {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: this.podName(spec.id),
        namespace: this.options.namespace,
        labels: { ...spec.meta.labels, ...this.ownership() },
        annotations: spec.meta.annotations,
      },
      spec: {
        restartPolicy: "Never",
        hostname: spec.id,
        automountServiceAccountToken: false,
        enableServiceLinks: false,
        terminationGracePeriodSeconds: this.options.terminationGracePeriodSeconds,
        ...(this.options.runtimeClassName ? { runtimeClassName: this.options.runtimeClassName } : {}),
        securityContext: {
          runAsNonRoot: true,
          runAsUser: SESSION_UID,
          runAsGroup: SESSION_GID,
          fsGroup: SESSION_GID,
          seccompProfile: { type: "RuntimeDefault" },
        },
        containers: [
          {
            name: RUNNERD_CONTAINER,
            image: spec.image,
            imagePullPolicy: this.options.imagePullPolicy,
            env: Object.entries(spec.runnerdEnv).map(([name, value]) => ({ name, value })),
            ports: [{ name: "runnerd", containerPort: RUNNERD_PORT, protocol: "TCP" }],
            workingDir: WORKSPACE_PATH,
            resources: {
              requests: { cpu: `${cpuRequestMilli}m`, memory },
              limits: { cpu: `${cpuLimitMilli}m`, memory },
            },
            securityContext: {
              allowPrivilegeEscalation: false,
              readOnlyRootFilesystem: true,
              runAsNonRoot: true,
              capabilities: { drop: ["ALL"] },
            },
            volumeMounts: [
              { name: "workspace", mountPath: WORKSPACE_PATH },
              { name: "tmp", mountPath: "/tmp" },
              { name: "home", mountPath: HOME_PATH },
            ],
          },
        ],
        volumes: [
          spec.workspace.persistent
            ? { name: "workspace", persistentVolumeClaim: { claimName } }
            : { name: "workspace", emptyDir: scratch(spec.workspace.sizeMb) },
          { name: "tmp", emptyDir: scratch(DISK_SCRATCH_MB.tmp) },
          { name: "home", emptyDir: scratch(DISK_SCRATCH_MB.home) },
        ],
      },
    };
  }

  private async ensureClaim(spec: BackendSessionSpec): Promise<void> {
    const body: V1PersistentVolumeClaim = {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: {
        name: this.claimName(spec.id),
        namespace: this.options.namespace,
        labels: { ...spec.meta.labels, ...this.ownership() },
        annotations: spec.meta.annotations,
      },
      spec: {
        accessModes: ["ReadWriteOnce"],
        resources: { requests: { storage: `${spec.workspace.sizeMb}Mi` } },
        ...(spec.workspace.storageClass ? { storageClassName: spec.workspace.storageClass } : {}),
      },
    };
    try {
      await this.core.createNamespacedPersistentVolumeClaim({ namespace: this.options.namespace, body });
    } catch (error) {
      // Ours already (a repeat after a failed delete): the Pod takes it as it is.
      if (codeOf(error) !== 409) throw unavailable("could not create the workspace claim", error);
    }
  }

  /**
   * Follows the new Pod until it runs with an address (or fails, or its
   * deadline passes): a watch from the version the create returned, so no
   * change between the two is missed.
   */
  private waitRunning(id: string, resourceVersion: string | undefined, signal: AbortSignal): Promise<BackendSession> {
    const name = this.podName(id);
    const path = `/api/v1/namespaces/${this.options.namespace}/pods`;
    const started = Date.now();
    return new Promise<BackendSession>((resolve, reject) => {
      let settled = false;
      let current: AbortController | undefined;
      let version = resourceVersion;
      const finish = (result: { session?: BackendSession; error?: Error }) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        current?.abort();
        if (result.session) resolve(result.session);
        else reject(result.error);
      };
      const onAbort = () => finish({ error: new StartTimeoutError("the session Pod did not run in time") });
      signal.addEventListener("abort", onAbort, { once: true });
      const judge = (pod: V1Pod) => {
        const session = this.fromPod(pod);
        if (!session) return;
        const { state } = session;
        if (state.phase === "running" && session.endpoint) finish({ session });
        else if (state.phase === "terminating")
          finish({ error: new BackendNotFoundError(`Pod ${name} is being deleted`) });
        else if (state.phase === "failed") {
          const waitForRoom =
            state.reason.code === "unschedulable" && Date.now() - started < this.options.unschedulableGraceMs;
          if (waitForRoom) return;
          finish({
            error:
              state.reason.code === "image-unavailable"
                ? new ImageUnavailableError(pod.spec?.containers[0]?.image ?? "", state.reason.message)
                : state.reason.code === "removed"
                  ? new BackendNotFoundError(`Pod ${name} was deleted`)
                  : new StartFailedError(state.reason),
          });
        }
      };
      const follow = async () => {
        while (!settled) {
          try {
            current = await new Watch(this.config).watch(
              path,
              { fieldSelector: `metadata.name=${name}`, ...(version ? { resourceVersion: version } : {}) },
              (type: string, pod: V1Pod) => {
                version = pod.metadata?.resourceVersion ?? version;
                if (type === "DELETED") finish({ error: new BackendNotFoundError(`Pod ${name} was deleted`) });
                else judge(pod);
              },
              () => {
                // The watch ended (server timeout, network): read once and follow again.
                if (!settled) void follow();
              },
            );
            return;
          } catch (error) {
            if (settled) return;
            this.log.debug({ sessionId: id, err: error }, "watch of a new Pod failed; reading it instead");
            version = undefined;
          }
          try {
            const pod = await this.core.readNamespacedPod({ name, namespace: this.options.namespace });
            version = pod.metadata?.resourceVersion;
            judge(pod);
          } catch (error) {
            if (codeOf(error) === 404) finish({ error: new BackendNotFoundError(`Pod ${name} was deleted`) });
            else if (!settled) await new Promise((r) => setTimeout(r, 200));
          }
        }
      };
      void follow();
    });
  }

  private fromPod(pod: V1Pod, claim?: V1PersistentVolumeClaim): BackendSession | undefined {
    const labels = pod.metadata?.labels ?? {};
    const id = labels[LABELS.sessionId];
    if (id === undefined) return undefined;
    const read = podState(pod);
    const stopping = read.state.phase === "terminating" && claim?.metadata?.annotations?.[ANNOTATIONS.stoppedAt];
    const { state, endpoint } = stopping ? { state: { phase: "stopping" as const }, endpoint: undefined } : read;
    return { id, meta: metaOf(labels, pod.metadata?.annotations ?? {}), state, endpoint };
  }

  /**
   * A workspace claim whose Pod is gone: a stopped session (the claim carries the stop), or a Pod
   * removed behind our back (our creates make the Pod first).
   */
  private fromOrphanClaim(claim: V1PersistentVolumeClaim): BackendSession | undefined {
    const labels = claim.metadata?.labels ?? {};
    const id = labels[LABELS.sessionId];
    if (id === undefined || claim.metadata?.deletionTimestamp) return undefined;
    const annotations = claim.metadata?.annotations ?? {};
    const at = Number(annotations[ANNOTATIONS.stoppedAt]);
    return {
      id,
      meta: metaOf(labels, annotations),
      state: Number.isFinite(at) ? { phase: "stopped", at } : { phase: "failed", reason: removedReason(null) },
      endpoint: undefined,
    };
  }

  private isOurs(labels: Record<string, string> | undefined): boolean {
    return labels?.[LABELS.managed] === "true" && labels[LABELS.deployment] === this.options.deployment;
  }

  private ownership(): Record<string, string> {
    return { [LABELS.managed]: "true", [LABELS.deployment]: this.options.deployment };
  }

  private selector(): string {
    return `${LABELS.managed}=true,${LABELS.deployment}=${this.options.deployment}`;
  }

  private async call<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (error) {
      throw unavailable(`could not ${what}`, error);
    }
  }
}

function metaOf(labels: Record<string, string>, annotations: Record<string, string>): SessionMeta {
  const meta: SessionMeta = { labels: {}, annotations: {} };
  for (const [key, value] of Object.entries(labels)) if (SELECTOR_KEYS.has(key)) meta.labels[key] = value;
  for (const [key, value] of Object.entries(annotations)) {
    if (key !== DELETING_ANNOTATION && ANNOTATION_PREFIXES.some((prefix) => key.startsWith(prefix))) {
      meta.annotations[key] = value;
    }
  }
  return meta;
}

function codeOf(error: unknown): number | undefined {
  return error instanceof ApiException && typeof error.code === "number" ? error.code : undefined;
}

function messageOf(error: unknown): string {
  if (error instanceof ApiException) {
    const body: unknown = error.body;
    if (typeof body === "string") {
      try {
        const parsed: unknown = JSON.parse(body);
        if (
          typeof parsed === "object" &&
          parsed !== null &&
          "message" in parsed &&
          typeof parsed.message === "string"
        ) {
          return parsed.message;
        }
      } catch {
        return body.slice(0, 300);
      }
    }
    return `HTTP ${error.code}`;
  }
  return error instanceof Error ? error.message : String(error);
}

function unavailable(what: string, error: unknown): BackendUnavailableError {
  if (error instanceof BackendUnavailableError) return error;
  const code = codeOf(error);
  const reason = code === 403 ? `forbidden (check the spawner's RBAC Role): ${messageOf(error)}` : messageOf(error);
  return new BackendUnavailableError(`${what}: ${reason}`, { cause: error });
}
