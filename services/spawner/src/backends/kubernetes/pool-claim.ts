import type { V1Pod } from "@kubernetes/client-node";
import { ANNOTATIONS, LABELS } from "@sbx/protocol";
import type { BackendSession, PoolMember, SessionMeta } from "../backend.js";
import { BackendConflictError, BackendNotFoundError } from "../backend-errors.js";
import { codeOf, type KubeApi, kubeUnavailable } from "./kube-api.js";
import { podState, sessionOfPod } from "./pod-state.js";

/**
 * Warm pool members on Kubernetes: Pods labelled with their pool, and the claim that makes one a
 * session: a merge patch of its labels and annotations bound to the version read, so of replicas
 * claiming one member at once exactly one wins. The member keeps its Pod name.
 */
export class PoolClaims {
  constructor(private readonly api: KubeApi) {}

  async list(): Promise<PoolMember[]> {
    const pods = await this.api.call("list pool members", () =>
      this.api.core.listNamespacedPod({
        namespace: this.api.namespace,
        labelSelector: `${this.api.selector()},${LABELS.pool}`,
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
      this.api.podNamed(id, false),
      this.api.podLabelled(id),
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
        claimed = await this.api.patchPod(this.api.podName(memberId), {
          metadata: { resourceVersion: version, labels, annotations },
        });
      } catch (error) {
        if (codeOf(error) === 404) throw new BackendConflictError(`pool member ${memberId} is gone`);
        if (codeOf(error) !== 409) throw kubeUnavailable("could not claim a pool member", error);
        if (attempt > 0) throw new BackendConflictError(`pool member ${memberId} was claimed`);
        version = await this.readMember(memberId);
      }
    }
    // Its workspace claim (a persistent workspace) follows it; an emptyDir workspace has none to patch.
    const persistent = claimed.spec?.volumes?.some((v) => v.name === "workspace" && v.persistentVolumeClaim);
    if (persistent) {
      try {
        await this.api.patchClaim(this.api.claimName(memberId), { metadata: { labels, annotations } });
      } catch (error) {
        if (codeOf(error) !== 404) throw kubeUnavailable("could not claim a pool member's workspace", error);
      }
    }
    const session = sessionOfPod(claimed);
    if (!session) throw new BackendNotFoundError(`the claimed session ${id} is gone`);
    return session;
  }

  /** The resourceVersion of a pool member that is still unclaimed; a conflict when it is gone or claimed. */
  private async readMember(memberId: string): Promise<string> {
    let pod: V1Pod;
    try {
      pod = await this.api.core.readNamespacedPod({ name: this.api.podName(memberId), namespace: this.api.namespace });
    } catch (error) {
      if (codeOf(error) === 404) throw new BackendConflictError(`pool member ${memberId} is gone`);
      throw kubeUnavailable("could not read a pool member", error);
    }
    if (pod.metadata?.labels?.[LABELS.pool] === undefined) {
      throw new BackendConflictError(`pool member ${memberId} was claimed`);
    }
    const version = pod.metadata.resourceVersion;
    if (version === undefined) throw kubeUnavailable("a pool member has no resourceVersion", undefined);
    return version;
  }
}
