import { hostname } from "node:os";
import { PatchStrategy, setHeaderOptions, V1MicroTime } from "@kubernetes/client-node";
import type { HeldLock } from "../backend.js";
import type { LockRecord, LockStore } from "../core/lock.js";
import { codeOf, type KubeApi, kubeUnavailable } from "./kube-api.js";

/**
 * Locks as coordination.k8s.io Leases: a Lease's name is given once, its uid tells one taking
 * from a later one of the same name, and its holder can extend it in place (`renew`), so locks
 * can be short-lived and a holder that dies blocks the others for moments only.
 */
export class LeaseLockStore implements LockStore {
  constructor(private readonly api: KubeApi) {}

  async create(name: string, ttlMs: number): Promise<HeldLock | undefined> {
    try {
      const made = await this.api.coordination.createNamespacedLease({
        namespace: this.api.namespace,
        body: {
          metadata: { name: this.api.leaseName(name), labels: this.api.ownership() },
          spec: {
            holderIdentity: `${hostname()}-${process.pid}`,
            leaseDurationSeconds: Math.ceil(ttlMs / 1000),
            acquireTime: new V1MicroTime(),
            renewTime: new V1MicroTime(),
          },
        },
      });
      const uid = made.metadata?.uid;
      if (uid === undefined) throw kubeUnavailable("a lock was taken without a uid", undefined);
      return { name, token: uid };
    } catch (error) {
      if (codeOf(error) === 409) return undefined;
      throw kubeUnavailable("could not take a lock", error);
    }
  }

  async read(name: string): Promise<LockRecord | undefined> {
    try {
      const held = await this.api.coordination.readNamespacedLease({
        name: this.api.leaseName(name),
        namespace: this.api.namespace,
      });
      const renewed = held.spec?.renewTime ? new Date(held.spec.renewTime).getTime() : 0;
      return {
        expiresAt: renewed + (held.spec?.leaseDurationSeconds ?? 0) * 1000,
        version: held.metadata?.resourceVersion ?? "",
      };
    } catch (error) {
      if (codeOf(error) === 404) return undefined;
      throw kubeUnavailable("could not read a lock", error);
    }
  }

  async break(name: string, version: string): Promise<void> {
    try {
      // Only as it was read: a lease another replica has just taken anew stays.
      await this.api.coordination.deleteNamespacedLease({
        name: this.api.leaseName(name),
        namespace: this.api.namespace,
        body: { preconditions: { resourceVersion: version } },
      });
    } catch (error) {
      if (codeOf(error) !== 404 && codeOf(error) !== 409) throw kubeUnavailable("could not break a lock", error);
    }
  }

  /** Only the lease this holder made: once it expired and another took the name, the precondition fails (409). */
  async release(lock: HeldLock): Promise<void> {
    try {
      await this.api.coordination.deleteNamespacedLease({
        name: this.api.leaseName(lock.name),
        namespace: this.api.namespace,
        body: { preconditions: { uid: lock.token } },
      });
    } catch (error) {
      if (codeOf(error) !== 404 && codeOf(error) !== 409) throw kubeUnavailable("could not release a lock", error);
    }
  }

  /** Extends the lease for another `ttlMs`; false when it is no longer this holder's. */
  async renew(lock: HeldLock, ttlMs: number): Promise<boolean> {
    try {
      // The uid in the patch is a precondition: a lease another replica has taken since is not
      // renewed (the API server refuses the patch as changing an immutable field, 422).
      await this.api.coordination.patchNamespacedLease(
        {
          name: this.api.leaseName(lock.name),
          namespace: this.api.namespace,
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
      throw kubeUnavailable("could not renew a lock", error);
    }
  }
}
