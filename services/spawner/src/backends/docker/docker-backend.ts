import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "@sbx/edge";
import { ApiError, LABELS } from "@sbx/protocol";
import Docker from "dockerode";
import {
  BackendConflictError,
  type BackendSession,
  type BackendSessionSpec,
  type Endpoint,
  type SessionBackend,
} from "../backend.js";

export const RUNNERD_PORT = 7070;
/** The unprivileged user of the runtime image; sessions always run as it. */
export const SESSION_UID = 10001;
const MiB = 1024 * 1024;

export interface DockerBackendOptions {
  socket: string;
  deployment: string;
  network: string;
  /** `address`: container IP on the shared network; `published`: a port on 127.0.0.1. */
  access: "address" | "published";
  pull: "if-missing" | "never";
}

/**
 * Sessions as Docker containers: one per session on a dedicated bridge
 * network, its workspace on a named volume, locked down (non-root,
 * capabilities dropped, no-new-privileges, read-only root with tmpfs
 * scratch, memory/CPU/pids limits). Labels carry the session's truth.
 */
export class DockerBackend implements SessionBackend {
  readonly kind = "docker";
  private readonly docker: Docker;

  constructor(
    private readonly options: DockerBackendOptions,
    private readonly log: Logger,
  ) {
    this.docker = new Docker({ socketPath: options.socket });
  }

  containerName(id: string): string {
    return `sbx-${this.options.deployment}-${id}`;
  }

  volumeName(id: string): string {
    return `sbx-${this.options.deployment}-${id}-workspace`;
  }

  async init(): Promise<void> {
    const existing = await this.docker.listNetworks({ filters: { name: [this.options.network] } });
    if (existing.some((n) => n.Name === this.options.network)) return;
    try {
      await this.docker.createNetwork({
        Name: this.options.network,
        Driver: "bridge",
        CheckDuplicate: true,
        Labels: this.ownership(),
        // Published mode reaches runnerd through the host, so sessions need not
        // (and must not) reach each other; address mode needs container-to-container.
        Options: { "com.docker.network.bridge.enable_icc": this.options.access === "published" ? "false" : "true" },
      });
      this.log.info({ network: this.options.network }, "created session network");
    } catch (error) {
      if (statusOf(error) !== 409) throw unavailable("could not create the session network", error);
    }
  }

  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (error) {
      throw unavailable("Docker engine unreachable", error);
    }
  }

  async create(spec: BackendSessionSpec, deadline: number): Promise<BackendSession> {
    const volume = this.volumeName(spec.id);
    await this.call("create the workspace volume", () =>
      this.docker.createVolume({ Name: volume, Labels: { ...this.ownership(), [LABELS.sessionId]: spec.id } }),
    );
    let container: Docker.Container;
    try {
      container = await this.createContainer(spec, volume);
    } catch (error) {
      // Someone else's container: its volume is theirs too.
      if (error instanceof BackendConflictError) throw error;
      await this.removeVolume(volume);
      throw error;
    }
    try {
      await this.call("start the session container", () => container.start());
      const endpoint = await this.waitForEndpoint(container, deadline);
      return { id: spec.id, labels: spec.labels, status: "running", endpoint };
    } catch (error) {
      await this.destroy(spec.id);
      throw error;
    }
  }

  async find(id: string): Promise<BackendSession | undefined> {
    const found = await this.call("list containers", () =>
      this.docker.listContainers({
        all: true,
        filters: { label: [...this.ownershipFilter(), `${LABELS.sessionId}=${id}`] },
      }),
    );
    const info = found[0];
    return info ? this.fromListing(info) : undefined;
  }

  async list(): Promise<BackendSession[]> {
    const found = await this.call("list containers", () =>
      this.docker.listContainers({ all: true, filters: { label: this.ownershipFilter() } }),
    );
    return found.flatMap((info) => {
      const session = this.fromListing(info);
      return session ? [session] : [];
    });
  }

  async destroy(id: string): Promise<boolean> {
    let removed = false;
    try {
      await this.docker.getContainer(this.containerName(id)).remove({ force: true });
      removed = true;
    } catch (error) {
      // 404: already gone; 409: a removal is already in progress (another replica).
      if (statusOf(error) !== 404 && statusOf(error) !== 409)
        throw unavailable("could not remove the container", error);
    }
    return (await this.removeVolume(this.volumeName(id))) || removed;
  }

  private async createContainer(spec: BackendSessionSpec, volume: string): Promise<Docker.Container> {
    const options: Docker.ContainerCreateOptions = {
      name: this.containerName(spec.id),
      Image: spec.image,
      Labels: { ...spec.labels, ...this.ownership() },
      Env: Object.entries(spec.runnerdEnv).map(([k, v]) => `${k}=${v}`),
      User: `${SESSION_UID}:${SESSION_UID}`,
      WorkingDir: "/workspace",
      ExposedPorts: { [`${RUNNERD_PORT}/tcp`]: {} },
      StopTimeout: 10,
      HostConfig: {
        NetworkMode: this.options.network,
        ...(this.options.access === "published"
          ? { PortBindings: { [`${RUNNERD_PORT}/tcp`]: [{ HostIp: "127.0.0.1", HostPort: "" }] } }
          : {}),
        Mounts: [{ Type: "volume", Source: volume, Target: "/workspace" }],
        Tmpfs: {
          "/tmp": "rw,nosuid,nodev,size=1g,mode=1777",
          "/home/sandbox": `rw,nosuid,nodev,size=512m,uid=${SESSION_UID},gid=${SESSION_UID},mode=0755`,
        },
        ReadonlyRootfs: true,
        CapDrop: ["ALL"],
        SecurityOpt: ["no-new-privileges"],
        Memory: spec.resources.memoryMb * MiB,
        MemorySwap: spec.resources.memoryMb * MiB,
        NanoCpus: Math.round(spec.resources.cpus * 1e9),
        PidsLimit: spec.resources.pids,
        RestartPolicy: { Name: "no" },
        LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "2" } },
      },
    };
    try {
      return await this.docker.createContainer(options);
    } catch (error) {
      if (statusOf(error) === 409) throw new BackendConflictError(`container for session ${spec.id} exists`);
      if (statusOf(error) !== 404) throw unavailable("could not create the session container", error);
    }
    // 404: the image is not here.
    if (this.options.pull === "never") {
      throw new ApiError("IMAGE_UNAVAILABLE", `image ${spec.image} is not present and pulling is disabled`);
    }
    await this.pull(spec.image);
    try {
      return await this.docker.createContainer(options);
    } catch (error) {
      if (statusOf(error) === 409) throw new BackendConflictError(`container for session ${spec.id} exists`);
      throw unavailable("could not create the session container", error);
    }
  }

  private async pull(image: string): Promise<void> {
    this.log.info({ image }, "pulling image");
    try {
      const stream = await this.docker.pull(image);
      await new Promise<void>((resolve, reject) => {
        this.docker.modem.followProgress(stream, (error: Error | null) => (error ? reject(error) : resolve()));
      });
    } catch (error) {
      throw new ApiError("IMAGE_UNAVAILABLE", `image ${image} is not present and could not be pulled`, {
        cause: error,
        details: { image },
      });
    }
  }

  /** Inspects until the container runs and has an address; a container that stops fails at once. */
  private async waitForEndpoint(container: Docker.Container, deadline: number): Promise<Endpoint> {
    for (;;) {
      const info = await this.call("inspect the session container", () => container.inspect());
      if (info.State.Running) {
        const endpoint = this.endpointOf(info.NetworkSettings);
        if (endpoint) return endpoint;
      } else if (info.State.Status === "exited" || info.State.Status === "dead") {
        throw new ApiError(
          "RUNNERD_NOT_READY",
          `the session container stopped at once (exit code ${info.State.ExitCode})`,
        );
      }
      if (Date.now() > deadline)
        throw new ApiError("RUNNERD_NOT_READY", "the session container did not get an address in time");
      await delay(20);
    }
  }

  private endpointOf(settings: {
    Networks?: Record<string, { IPAddress?: string }>;
    Ports?: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null>;
  }): Endpoint | undefined {
    if (this.options.access === "address") {
      const ip = settings.Networks?.[this.options.network]?.IPAddress;
      return ip ? { host: ip, port: RUNNERD_PORT } : undefined;
    }
    const binding = settings.Ports?.[`${RUNNERD_PORT}/tcp`]?.[0];
    const port = Number(binding?.HostPort);
    return port > 0 ? { host: "127.0.0.1", port } : undefined;
  }

  private fromListing(info: Docker.ContainerInfo): BackendSession | undefined {
    const id = info.Labels[LABELS.sessionId];
    if (id === undefined) return undefined;
    let endpoint: Endpoint | undefined;
    if (this.options.access === "address") {
      const ip = info.NetworkSettings?.Networks?.[this.options.network]?.IPAddress;
      endpoint = ip ? { host: ip, port: RUNNERD_PORT } : undefined;
    } else {
      const port = info.Ports.find((p) => p.PrivatePort === RUNNERD_PORT && p.PublicPort > 0)?.PublicPort;
      endpoint = port ? { host: "127.0.0.1", port } : undefined;
    }
    const status = info.State === "running" ? "running" : info.State === "created" ? "starting" : "exited";
    return { id, labels: info.Labels, status, endpoint };
  }

  private async removeVolume(name: string): Promise<boolean> {
    // Right after a forced container removal the volume can still count as in use for a moment.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.docker.getVolume(name).remove();
        return true;
      } catch (error) {
        if (statusOf(error) === 404) return false;
        if (statusOf(error) !== 409 || attempt >= 20) throw unavailable(`could not remove volume ${name}`, error);
        await delay(50);
      }
    }
  }

  private ownership(): Record<string, string> {
    return { [LABELS.managed]: "true", [LABELS.deployment]: this.options.deployment };
  }

  private ownershipFilter(): string[] {
    return [`${LABELS.managed}=true`, `${LABELS.deployment}=${this.options.deployment}`];
  }

  private async call<T>(what: string, op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (error) {
      if (error instanceof ApiError) throw error;
      throw unavailable(`could not ${what}`, error);
    }
  }
}

function statusOf(error: unknown): number | undefined {
  return error instanceof Error && "statusCode" in error && typeof error.statusCode === "number"
    ? error.statusCode
    : undefined;
}

function unavailable(what: string, error: unknown): ApiError {
  const reason = error instanceof Error ? error.message.replace(/^\(HTTP code \d+\)\s*/, "") : String(error);
  return new ApiError("BACKEND_UNAVAILABLE", `${what}: ${reason}`, { cause: error });
}
