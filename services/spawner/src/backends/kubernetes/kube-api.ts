import {
  ApiException,
  CoordinationV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1PersistentVolumeClaim,
  type V1Pod,
} from "@kubernetes/client-node";
import { LABELS } from "@sbx/protocol";
import type { BackendUnavailableError } from "../backend-errors.js";
import { platformCall, unavailable } from "../core/platform-error.js";
import { isOwnedBy, ownershipLabels, ownershipTerms } from "../core/session-meta.js";
import { DELETING_ANNOTATION } from "./pod-state.js";
import { PooledKubeConfig } from "./pooled-kube-config.js";

/**
 * One deployment's view of the Kubernetes API in one namespace: the names its objects get, the
 * reads and writes every part of the backend shares (a session's Pod and claim, by name or by
 * label), and the API's errors read once.
 */
export class KubeApi {
  readonly config = new PooledKubeConfig();
  readonly core: CoreV1Api;
  readonly coordination: CoordinationV1Api;

  constructor(
    kubeconfig: string | undefined,
    readonly namespace: string,
    readonly deployment: string,
  ) {
    if (kubeconfig) this.config.loadFromFile(kubeconfig);
    else this.config.loadFromDefault();
    this.core = this.config.makeApiClient(CoreV1Api);
    this.coordination = this.config.makeApiClient(CoordinationV1Api);
  }

  podName(id: string): string {
    return `sbx-${this.deployment}-${id}`;
  }

  claimName(id: string): string {
    return `sbx-${this.deployment}-${id}-workspace`;
  }

  /** The Lease that is the lock `name`. */
  leaseName(name: string): string {
    return `sbx-${this.deployment}-lock-${name}`;
  }

  ownership(): Record<string, string> {
    return ownershipLabels(this.deployment);
  }

  /** The label selector of this deployment's objects. */
  selector(): string {
    return ownershipTerms(this.deployment).join(",");
  }

  isOurs(labels: Record<string, string> | undefined): boolean {
    return isOwnedBy(labels, this.deployment);
  }

  /**
   * The session's Pod: by its name, or (a claimed pool member's) by its session label. Never a
   * claimed member's Pod by the member's id; an unclaimed member's only when `members` says so.
   */
  async readPod(id: string, members = false): Promise<V1Pod | undefined> {
    return (await this.podNamed(id, members)) ?? (await this.podLabelled(id));
  }

  /** The Pod named for session `id` (a cold-created session's, or a member's when `members`), if ours. */
  async podNamed(id: string, members: boolean): Promise<V1Pod | undefined> {
    try {
      const pod = await this.core.readNamespacedPod({ name: this.podName(id), namespace: this.namespace });
      const labels = pod.metadata?.labels;
      const member = labels?.[LABELS.pool] !== undefined;
      if (this.isOurs(labels) && labels?.[LABELS.sessionId] === id && (members || !member)) return pod;
    } catch (error) {
      if (codeOf(error) !== 404) throw kubeUnavailable("could not read the session Pod", error);
    }
    return undefined;
  }

  /** The Pod labelled with session `id` (a claimed pool member keeps its own name). */
  async podLabelled(id: string): Promise<V1Pod | undefined> {
    const found = await this.call("find the session Pod", () =>
      this.core.listNamespacedPod({
        namespace: this.namespace,
        labelSelector: `${this.selector()},${LABELS.sessionId}=${id},!${LABELS.pool}`,
      }),
    );
    return found.items[0];
  }

  /** The session's workspace claim: by its name, or (a claimed pool member's) by its session label. */
  async readClaim(id: string, members = false): Promise<V1PersistentVolumeClaim | undefined> {
    try {
      const claim = await this.core.readNamespacedPersistentVolumeClaim({
        name: this.claimName(id),
        namespace: this.namespace,
      });
      // A claimed pool member's workspace is its session's now, not the member id's.
      const labels = claim.metadata?.labels;
      if (labels?.[LABELS.sessionId] === id && (members || labels[LABELS.pool] === undefined)) return claim;
    } catch (error) {
      if (codeOf(error) !== 404) throw kubeUnavailable("could not read the session's workspace claim", error);
    }
    const found = await this.call("find the session's workspace claim", () =>
      this.core.listNamespacedPersistentVolumeClaim({
        namespace: this.namespace,
        labelSelector: `${this.selector()},${LABELS.sessionId}=${id},!${LABELS.pool}`,
      }),
    );
    return found.items[0];
  }

  /** This deployment's Pods and workspace claims. */
  async listObjects(): Promise<{ pods: V1Pod[]; claims: V1PersistentVolumeClaim[] }> {
    const [pods, claims] = await Promise.all([
      this.call("list session Pods", () =>
        this.core.listNamespacedPod({ namespace: this.namespace, labelSelector: this.selector() }),
      ),
      this.call("list workspace claims", () =>
        this.core.listNamespacedPersistentVolumeClaim({ namespace: this.namespace, labelSelector: this.selector() }),
      ),
    ]);
    return { pods: pods.items, claims: claims.items };
  }

  /** Deletes the session's Pod, marked first so every replica can tell our delete from someone else's. */
  async deletePod(id: string, members = false): Promise<boolean> {
    const name = (await this.readPod(id, members))?.metadata?.name;
    if (name === undefined) return false;
    try {
      await this.patchPod(name, { metadata: { annotations: { [DELETING_ANNOTATION]: "true" } } });
      await this.core.deleteNamespacedPod({ name, namespace: this.namespace });
      return true;
    } catch (error) {
      if (codeOf(error) !== 404) throw kubeUnavailable("could not delete the session Pod", error);
      return false;
    }
  }

  /** A JSON merge patch of a Pod (the API's errors are the caller's to read). */
  patchPod(name: string, body: object): Promise<V1Pod> {
    return this.core.patchNamespacedPod(
      { name, namespace: this.namespace, body },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  }

  /** A JSON merge patch of a PersistentVolumeClaim (the API's errors are the caller's to read). */
  patchClaim(name: string, body: object): Promise<V1PersistentVolumeClaim> {
    return this.core.patchNamespacedPersistentVolumeClaim(
      { name, namespace: this.namespace, body },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
  }

  call<T>(what: string, op: () => Promise<T>): Promise<T> {
    return platformCall(what, op, reasonOf);
  }
}

/** The HTTP status of a failed API call, where it has one. */
export function codeOf(error: unknown): number | undefined {
  return error instanceof ApiException && typeof error.code === "number" ? error.code : undefined;
}

/** The API server's own message of a failed call. */
export function messageOf(error: unknown): string {
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

function reasonOf(error: unknown): string {
  return codeOf(error) === 403 ? `forbidden (check the spawner's RBAC Role): ${messageOf(error)}` : messageOf(error);
}

export function kubeUnavailable(what: string, error: unknown): BackendUnavailableError {
  return unavailable(what, error, reasonOf);
}
