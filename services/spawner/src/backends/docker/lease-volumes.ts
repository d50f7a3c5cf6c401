import type { Logger } from "@sbx/edge";
import { ANNOTATIONS, LABELS, type Lease, leaseAnnotations } from "@sbx/protocol";
import { BackendUnavailableError } from "../backend-errors.js";
import type { DockerEngine } from "./docker-engine.js";
import { LEASE_SEQ, leaseSeqOf } from "./docker-inventory.js";

/**
 * A session's lease after its create, on Docker, where labels never change: each change is an
 * empty volume `…-lease-<seq>` whose labels hold it, the highest sequence being the current one
 * (docker-inventory.ts reads it back). Written by the spawner alone, out of the session's reach.
 */
export class LeaseVolumes {
  constructor(
    private readonly engine: DockerEngine,
    private readonly log: Logger,
  ) {}

  /** Records `lease` for the session created at `createdAt`; the earlier ones are removed after. */
  async set(id: string, createdAt: string, lease: Lease): Promise<void> {
    const earlier = await this.of(id);
    let seq = Math.max(-1, ...earlier.map((v) => v.seq)) + 1;
    // A volume's name is given once: of replicas setting a lease at once, each ends on its own
    // sequence, and the highest is the lease every lookup reads.
    for (let attempt = 0; ; attempt++, seq++) {
      const labels = {
        ...this.engine.ownership(),
        [LABELS.sessionId]: id,
        [ANNOTATIONS.createdAt]: createdAt,
        [LEASE_SEQ]: String(seq),
        ...leaseAnnotations(lease),
      };
      const made = await this.engine.call("record the lease", () =>
        this.engine.createVolumeAsIs({ Name: this.engine.leaseName(id, seq), Labels: labels }),
      );
      if (Object.entries(labels).every(([key, value]) => made.Labels?.[key] === value)) break;
      if (attempt >= 8)
        throw new BackendUnavailableError(`could not record the lease of session ${id}: too many at once`);
    }
    await Promise.all(
      earlier.map((v) =>
        this.engine.removeVolume(v.name).catch((error: unknown) => {
          this.log.warn({ sessionId: id, err: error }, "could not remove an earlier lease");
        }),
      ),
    );
  }

  /** Removes every lease volume of the session (with the session). */
  async removeAll(id: string): Promise<void> {
    for (const lease of await this.of(id)) await this.engine.removeVolume(lease.name);
  }

  /** The session's lease volumes, with their sequence numbers. */
  private async of(id: string): Promise<Array<{ name: string; seq: number }>> {
    const volumes = await this.engine.listVolumes([`${LABELS.sessionId}=${id}`, LEASE_SEQ]);
    return volumes.flatMap((v) => {
      const seq = leaseSeqOf(v.Labels ?? {});
      return seq === undefined ? [] : [{ name: v.Name, seq }];
    });
  }
}
