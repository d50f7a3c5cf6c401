import type { FailureReason } from "@sbx/protocol";
import type Docker from "dockerode";
import { exitDescription } from "../exit-description.js";
import { type DockerEngine, dockerUnavailable, statusOf } from "./docker-engine.js";

const MiB = 1024 * 1024;

/**
 * Why stopped containers stopped. An exit never changes until the container runs again, so each is
 * inspected once and kept until the container's next event (`forget`).
 */
export class ContainerExits {
  private readonly known = new Map<string, FailureReason>();

  constructor(private readonly engine: DockerEngine) {}

  /** The exit of a stopped container; undefined when it was removed meanwhile. */
  async of(containerId: string): Promise<FailureReason | undefined> {
    const known = this.known.get(containerId);
    if (known) return known;
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.engine.docker.getContainer(containerId).inspect();
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw dockerUnavailable("could not inspect a stopped session container", error);
    }
    const reason = failureOf(info, "");
    if (this.known.size > 1000) this.known.clear();
    this.known.set(containerId, reason);
    return reason;
  }

  /** The container changed (an event): its exit is read afresh next time. */
  forget(containerId: string): void {
    this.known.delete(containerId);
  }

  clear(): void {
    this.known.clear();
  }
}

/** A container's end as a failure reason: out of memory when the kernel said so, else its exit code. */
export function failureOf(info: Docker.ContainerInspectInfo, when: string): FailureReason {
  const finished = Date.parse(info.State.FinishedAt);
  const at = Number.isFinite(finished) && finished > 0 ? finished : null;
  const exitCode = info.State.ExitCode;
  const suffix = when === "" ? "" : ` ${when}`;
  if (info.State.OOMKilled) {
    const limit = Math.round((info.HostConfig.Memory ?? 0) / MiB);
    return {
      code: "oom-killed",
      message: `the session was killed for running out of memory${limit > 0 ? ` (limit ${limit} MiB)` : ""}${suffix}`,
      exitCode,
      at,
    };
  }
  return {
    code: "exited",
    message: `the session container exited with ${exitDescription(exitCode)}${suffix}`,
    exitCode,
    at,
  };
}
