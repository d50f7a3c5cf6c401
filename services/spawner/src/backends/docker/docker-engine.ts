import Docker from "dockerode";
import pRetry from "p-retry";
import { z } from "zod";
import type { BackendUnavailableError } from "../backend-errors.js";
import { platformCall, unavailable } from "../core/platform-error.js";
import { ownershipLabels, ownershipTerms } from "../core/session-meta.js";
import type { VolumeInfo } from "./docker-inventory.js";

/**
 * One deployment's view of the Docker engine: the names its objects get, and the calls on
 * containers and volumes every part of the Docker backend makes, with the engine's errors read
 * once (statusOf) and turned into BackendUnavailableError where they are not the caller's to judge.
 */
export class DockerEngine {
  readonly docker: Docker;

  constructor(
    socket: string,
    readonly deployment: string,
  ) {
    this.docker = new Docker({ socketPath: socket });
  }

  containerName(id: string): string {
    return `sbx-${this.deployment}-${id}`;
  }

  volumeName(id: string): string {
    return `sbx-${this.deployment}-${id}-workspace`;
  }

  /** An empty volume, one per pool member, that holds the truth of the session that claimed it. */
  claimName(memberId: string): string {
    return `sbx-${this.deployment}-${memberId}-claim`;
  }

  /** An empty volume whose labels hold what was changed of a session after its create (`seq`: the newest wins). */
  amendmentName(id: string, seq: number): string {
    return `sbx-${this.deployment}-${id}-amended-${seq}`;
  }

  /** An empty volume that marks a session as stopped by the spawner. */
  stopMarkerName(id: string): string {
    return `sbx-${this.deployment}-${id}-stopped`;
  }

  /** The never-started container that is the lock `name`. */
  lockName(name: string): string {
    return `sbx-${this.deployment}-lock-${name}`;
  }

  ownership(): Record<string, string> {
    return ownershipLabels(this.deployment);
  }

  listContainers(extraLabels: string[]): Promise<Docker.ContainerInfo[]> {
    return this.call("list containers", () =>
      this.docker.listContainers({
        all: true,
        filters: { label: [...ownershipTerms(this.deployment), ...extraLabels] },
      }),
    );
  }

  async listVolumes(extraLabels: string[]): Promise<VolumeInfo[]> {
    const result = await this.call("list volumes", () =>
      this.docker.listVolumes({ filters: { label: [...ownershipTerms(this.deployment), ...extraLabels] } }),
    );
    return result.Volumes ?? [];
  }

  /** Creates a volume (or finds it made already) and returns the engine's account of it (dockerode's keeps only the name). */
  createVolumeAsIs(options: Docker.VolumeCreateOptions): Promise<z.infer<typeof CreatedVolumeSchema>> {
    return new Promise((resolve, reject) => {
      this.docker.modem.dial(
        {
          path: "/volumes/create?",
          method: "POST",
          options,
          statusCodes: { 200: true, 201: true, 500: "server error" },
        },
        (error: unknown, data: unknown) => (error ? reject(error) : resolve(CreatedVolumeSchema.parse(data))),
      );
    });
  }

  /** True when the volume was there to remove. */
  async removeVolume(name: string): Promise<boolean> {
    // Right after a forced container removal the volume can still count as in use for a moment.
    return pRetry(
      async () => {
        try {
          await this.docker.getVolume(name).remove();
          return true;
        } catch (error) {
          if (statusOf(error) === 404) return false;
          throw error;
        }
      },
      {
        retries: 20,
        minTimeout: 50,
        factor: 1,
        shouldRetry: ({ error }) => statusOf(error) === 409,
      },
    ).catch((error: unknown) => {
      throw dockerUnavailable(`could not remove volume ${name}`, error);
    });
  }

  async volumeExists(name: string): Promise<boolean> {
    try {
      await this.docker.getVolume(name).inspect();
      return true;
    } catch (error) {
      if (statusOf(error) === 404) return false;
      throw dockerUnavailable(`could not read volume ${name}`, error);
    }
  }

  /** True when the container was there to remove. */
  async removeContainer(name: string): Promise<boolean> {
    try {
      await this.docker.getContainer(name).remove({ force: true });
      return true;
    } catch (error) {
      // 404: already gone; 409: a removal is already in progress (another replica).
      if (statusOf(error) !== 404 && statusOf(error) !== 409) {
        throw dockerUnavailable("could not remove the container", error);
      }
      return false;
    }
  }

  call<T>(what: string, op: () => Promise<T>): Promise<T> {
    return platformCall(what, op, reasonOf);
  }
}

const CreatedVolumeSchema = z.object({ Name: z.string(), Labels: z.record(z.string(), z.string()).nullish() });

/** The HTTP status of a failed engine call, where it has one. */
export function statusOf(error: unknown): number | undefined {
  return error instanceof Error && "statusCode" in error && typeof error.statusCode === "number"
    ? error.statusCode
    : undefined;
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message.replace(/^\(HTTP code \d+\)\s*/, "") : String(error);
}

export function dockerUnavailable(what: string, error: unknown): BackendUnavailableError {
  return unavailable(what, error, reasonOf);
}
