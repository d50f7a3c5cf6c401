import type { Logger } from "@sbx/edge";
import { AMENDABLE_ANNOTATIONS, ANNOTATIONS, LABELS } from "@sbx/protocol";
import { BackendUnavailableError } from "../backend-errors.js";
import type { DockerEngine } from "./docker-engine.js";
import { AMENDMENT_SEQ, amendmentSeqOf } from "./docker-inventory.js";

/**
 * What the spawner changes of a session after its create (its lease, its egress policy), on Docker,
 * where labels never change: each change is an empty volume `…-amended-<seq>` whose labels hold
 * every amended annotation so far, the highest sequence being the current one (docker-inventory.ts
 * reads it back). Written by the spawner alone, out of the session's reach.
 */
export class AmendmentVolumes {
  constructor(
    private readonly engine: DockerEngine,
    private readonly log: Logger,
  ) {}

  /** Records `changes` (amendable annotations) for the session created at `createdAt`, over the earlier ones. */
  async amend(id: string, createdAt: string, changes: Readonly<Record<string, string>>): Promise<void> {
    const earlier = await this.of(id);
    const newest = earlier.reduce<(typeof earlier)[number] | undefined>(
      (best, v) => (best === undefined || v.seq > best.seq ? v : best),
      undefined,
    );
    const carried = Object.fromEntries(
      Object.entries(newest?.labels ?? {}).filter(([key]) => AMENDABLE_ANNOTATIONS.includes(key)),
    );
    let seq = (newest?.seq ?? -1) + 1;
    // A volume's name is given once: of replicas amending at once, each ends on its own sequence,
    // and the highest is what every lookup reads.
    for (let attempt = 0; ; attempt++, seq++) {
      const labels = {
        ...this.engine.ownership(),
        [LABELS.sessionId]: id,
        [ANNOTATIONS.createdAt]: createdAt,
        [AMENDMENT_SEQ]: String(seq),
        ...carried,
        ...changes,
      };
      const made = await this.engine.call("record the session's change", () =>
        this.engine.createVolumeAsIs({ Name: this.engine.amendmentName(id, seq), Labels: labels }),
      );
      if (Object.entries(labels).every(([key, value]) => made.Labels?.[key] === value)) break;
      if (attempt >= 8)
        throw new BackendUnavailableError(`could not record a change of session ${id}: too many at once`);
    }
    await Promise.all(
      earlier.map((v) =>
        this.engine.removeVolume(v.name).catch((error: unknown) => {
          this.log.warn({ sessionId: id, err: error }, "could not remove an earlier change");
        }),
      ),
    );
  }

  /** Removes every amendment volume of the session (with the session). */
  async removeAll(id: string): Promise<void> {
    for (const volume of await this.of(id)) await this.engine.removeVolume(volume.name);
  }

  /** The session's amendment volumes, with their sequence numbers and labels. */
  private async of(id: string): Promise<Array<{ name: string; seq: number; labels: Record<string, string> }>> {
    const volumes = await this.engine.listVolumes([`${LABELS.sessionId}=${id}`, AMENDMENT_SEQ]);
    return volumes.flatMap((v) => {
      const labels = v.Labels ?? {};
      const seq = amendmentSeqOf(labels);
      return seq === undefined ? [] : [{ name: v.Name, seq, labels }];
    });
  }
}
