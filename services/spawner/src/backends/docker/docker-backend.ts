import type { Logger } from "@sbx/edge";
import { ANNOTATIONS, type FailureReason, LABELS } from "@sbx/protocol";
import type Docker from "dockerode";
import pRetry, { AbortError } from "p-retry";
import type {
  BackendCapabilities,
  BackendSession,
  BackendSessionSpec,
  Endpoint,
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
  ImageUnavailableError,
  StartFailedError,
  StartTimeoutError,
} from "../backend-errors.js";
import { takeLock } from "../core/lock.js";
import { amendable, flattenMeta, ownershipTerms } from "../core/session-meta.js";
import { AmendmentVolumes } from "./amendment-volumes.js";
import { ContainerExits, failureOf } from "./container-exits.js";
import { ContainerLockStore } from "./container-lock.js";
import { type ContainerSettings, containerOptions, endpointOf } from "./container-spec.js";
import { DockerEngine, dockerUnavailable, statusOf } from "./docker-engine.js";
import { DockerEventFeed } from "./docker-events.js";
import { DockerImages } from "./docker-images.js";
import { readInventory, type VolumeInfo } from "./docker-inventory.js";
import { EgressGuard } from "./egress-guard.js";
import { ensureSessionNetwork } from "./session-network.js";

export interface DockerBackendOptions extends ContainerSettings {
  socket: string;
  deployment: string;
  pull: "if-missing" | "never";
  /**
   * A workspace volume without its container is a create in progress while
   * younger than this, and a container removed out of band after.
   */
  orphanVolumeGraceMs: number;
  /** An image the engine has, for the never-started containers that are locks (the runtime image). */
  lockImage: string;
  /** The sessions' network's subnet, where it must be known in advance; Docker's choice otherwise. */
  subnet: string | undefined;
  /** Lock each session's network namespace down to the gateway (egress-guard.ts). */
  egressGuard: boolean;
  /** The gateway's proxy port on the host (the sessions' network's gateway address); none: nothing out. */
  gatewayPort: number | undefined;
}

/**
 * Sessions as Docker containers: one per session on a dedicated bridge network, its workspace on
 * a named volume, locked down (container-spec.ts). Labels and annotations both live in the
 * container's labels, and the volume's, so a container removed behind our back is reported as
 * such rather than forgotten; what changes after a create (a claim, a stop, a lease) lives on
 * empty volumes of its own, since Docker labels never change (docker-inventory.ts reads them all).
 */
export class DockerBackend implements SessionBackend {
  readonly kind = "docker";
  /** Every workspace is a volume that outlives its container; a container's labels cannot be renewed. */
  readonly capabilities: BackendCapabilities = { stopsKeepEveryWorkspace: true, renewableLocks: false };
  private readonly engine: DockerEngine;
  private readonly exits: ContainerExits;
  private readonly images: DockerImages;
  private readonly locks: ContainerLockStore;
  private readonly amendments: AmendmentVolumes;
  private readonly events: DockerEventFeed;
  private readonly guard: EgressGuard;
  /** The sessions' network's gateway address: the host, as sessions reach it (known after init). */
  private networkGateway: string | undefined;

  constructor(
    private readonly options: DockerBackendOptions,
    private readonly log: Logger,
  ) {
    this.engine = new DockerEngine(options.socket, options.deployment);
    this.exits = new ContainerExits(this.engine);
    this.images = new DockerImages(this.engine, options.pull, log);
    this.locks = new ContainerLockStore(this.engine, options.lockImage);
    this.amendments = new AmendmentVolumes(this.engine, log);
    this.events = new DockerEventFeed(this.engine, this.exits, (id) => this.find(id), log);
    this.guard = new EgressGuard(options.egressGuard);
  }

  containerName(id: string): string {
    return this.engine.containerName(id);
  }

  async init(): Promise<void> {
    this.networkGateway = await ensureSessionNetwork(this.engine, this.options, this.log);
  }

  hostAddress(): string | undefined {
    return this.networkGateway;
  }

  async ping(): Promise<void> {
    await this.engine.call("reach the Docker engine", () => this.engine.docker.ping());
  }

  async close(): Promise<void> {
    // Nothing of its own runs: the event feed ends with the function `watch` returned.
  }

  async create(spec: BackendSessionSpec, signal: AbortSignal): Promise<BackendSession> {
    // The image first: a pull may take long, and a workspace volume must not wait alone
    // meanwhile (a volume without its container soon counts as a removed session).
    await this.images.ensure(spec.image);
    if (signal.aborted) throw new StartTimeoutError("the create's deadline passed before the session was made");
    const volume = this.engine.volumeName(spec.id);
    const labels = { ...flattenMeta(spec.meta), ...this.engine.ownership() };
    await this.engine.call("create the workspace volume", () =>
      this.engine.docker.createVolume({ Name: volume, Labels: labels }),
    );
    let container: Docker.Container;
    try {
      container = await this.engine.docker.createContainer(
        containerOptions(spec, this.engine.containerName(spec.id), volume, labels, this.options),
      );
    } catch (error) {
      // Someone else's container: its volume is theirs too.
      if (statusOf(error) === 409) throw new BackendConflictError(`container for session ${spec.id} exists`);
      await this.engine.removeVolume(volume);
      // 404: the image went away since it was ensured (or the volume did: a racing delete).
      if (statusOf(error) === 404) {
        throw new ImageUnavailableError(spec.image, `image ${spec.image} is not present`, { cause: error });
      }
      throw dockerUnavailable("could not create the session container", error);
    }
    try {
      await this.start(spec.id, container);
      const endpoint = await this.runGuarded(spec.id, container, signal);
      return { id: spec.id, meta: spec.meta, state: { phase: "running" }, endpoint };
    } catch (error) {
      await this.destroy(spec.id);
      throw error;
    }
  }

  async find(id: string): Promise<BackendSession | undefined> {
    // Its own container, or its claim and the pool member it claimed, or volumes alone.
    const [containers, volumes] = await Promise.all([
      this.engine.listContainers([`${LABELS.sessionId}=${id}`]),
      this.engine.listVolumes([`${LABELS.sessionId}=${id}`]),
    ]);
    const member = volumes.map((v) => v.Labels?.[ANNOTATIONS.poolMember]).find((m) => m !== undefined);
    if (member !== undefined) {
      const [memberContainers, memberVolumes] = await Promise.all([
        this.engine.listContainers([`${LABELS.sessionId}=${member}`]),
        this.engine.listVolumes([`${LABELS.sessionId}=${member}`]),
      ]);
      containers.push(...memberContainers);
      volumes.push(...memberVolumes);
    }
    return (await this.inventory(containers, volumes)).sessions.find((s) => s.id === id);
  }

  async list(): Promise<BackendSession[]> {
    const [containers, volumes] = await Promise.all([this.engine.listContainers([]), this.engine.listVolumes([])]);
    return (await this.inventory(containers, volumes)).sessions;
  }

  async listPool(): Promise<PoolMember[]> {
    const [containers, volumes] = await Promise.all([
      this.engine.listContainers([LABELS.pool]),
      this.engine.listVolumes([]),
    ]);
    return (await this.inventory(containers, volumes)).members;
  }

  async claim(member: PoolMember, meta: SessionMeta): Promise<BackendSession> {
    const { memberId } = member;
    const id = meta.labels[LABELS.sessionId];
    if (id === undefined) throw new Error("a claim needs the session's id");
    // The engine makes a volume of a given name once and answers later creates with the first
    // one: of claims racing for a member, the one whose labels the volume has is the winner. Docker
    // labels never change, so that volume is also where the session's truth lives from now on.
    const claim = this.engine.claimName(memberId);
    const made = await this.engine.call("claim a pool member", () =>
      this.engine.createVolumeAsIs({
        Name: claim,
        Labels: { ...flattenMeta(meta), ...this.engine.ownership(), [ANNOTATIONS.poolMember]: memberId },
      }),
    );
    if (made.Labels?.[LABELS.sessionId] !== id) {
      throw new BackendConflictError(`pool member ${memberId} was claimed by another session`);
    }
    // The container takes the session's name (it keeps running as it did, with its address).
    try {
      await this.engine.docker
        .getContainer(this.engine.containerName(memberId))
        .rename({ name: this.engine.containerName(id) });
    } catch (error) {
      await this.engine.removeVolume(claim).catch((cleanup: unknown) => {
        this.log.error({ sessionId: id, err: cleanup }, "could not withdraw a claim");
      });
      if (statusOf(error) === 404) throw new BackendConflictError(`pool member ${memberId} is gone`);
      if (statusOf(error) === 409) throw new BackendConflictError(`a session ${id} exists`);
      throw dockerUnavailable("could not claim a pool member", error);
    }
    return { id, meta, state: { phase: "running" }, endpoint: member.endpoint };
  }

  tryLock(name: string, options: { ttlMs: number }): Promise<HeldLock | undefined> {
    return takeLock(this.locks, name, options.ttlMs, Date.now);
  }

  unlock(lock: HeldLock): Promise<void> {
    return this.locks.release(lock);
  }

  async renewLock(): Promise<boolean> {
    throw new Error("Docker locks cannot be renewed in place (capabilities.renewableLocks is false)");
  }

  currentImageId(image: string): Promise<string | undefined> {
    return this.images.idOf(image);
  }

  async stop(id: string): Promise<void> {
    // The mark first: every replica then reads the container's ending as a stop.
    const marker = this.engine.stopMarkerName(id);
    await this.engine.removeVolume(marker);
    await this.engine.call("record the stop", () =>
      this.engine.docker.createVolume({
        Name: marker,
        Labels: { ...this.engine.ownership(), [LABELS.sessionId]: id, [ANNOTATIONS.stoppedAt]: String(Date.now()) },
      }),
    );
    try {
      // SIGTERM: runnerd ends running execs (`interrupted`), keeps its state on the volume, exits 0.
      await this.engine.docker.getContainer(this.engine.containerName(id)).stop({ t: this.options.stopTimeoutSeconds });
    } catch (error) {
      if (statusOf(error) === 304) return; // already stopped
      await this.engine.removeVolume(marker);
      if (statusOf(error) === 404) throw new BackendNotFoundError(`the container of session ${id} is gone`);
      throw dockerUnavailable("could not stop the session container", error);
    }
  }

  async amend(id: string, changes: Readonly<Record<string, string>>): Promise<void> {
    const session = await this.find(id);
    if (!session) throw new BackendNotFoundError(`no session ${id}`);
    await this.amendments.amend(id, session.meta.annotations[ANNOTATIONS.createdAt] ?? "", amendable(changes));
  }

  async resume(spec: BackendSessionSpec, signal: AbortSignal): Promise<BackendSession> {
    const container = this.engine.docker.getContainer(this.engine.containerName(spec.id));
    this.exits.clear();
    await this.start(spec.id, container);
    let endpoint: Endpoint;
    try {
      endpoint = await this.runGuarded(spec.id, container, signal);
    } catch (error) {
      // Never left running unguarded: stopped again (still marked stopped), and the error told.
      await container.kill().catch(() => undefined);
      throw error;
    }
    await this.engine.removeVolume(this.engine.stopMarkerName(spec.id));
    return { id: spec.id, meta: spec.meta, state: { phase: "running" }, endpoint };
  }

  async destroy(id: string): Promise<boolean> {
    // A claimed member belongs to its session now: only the session's destroy removes it.
    if (await this.engine.volumeExists(this.engine.claimName(id))) return false;
    // A session claimed from the pool: its claim names the member (container and workspace).
    const claim = (await this.engine.listVolumes([`${LABELS.sessionId}=${id}`])).find(
      (v) => v.Labels?.[ANNOTATIONS.poolMember] !== undefined,
    );
    const member = claim?.Labels?.[ANNOTATIONS.poolMember];
    let removed = await this.engine.removeContainer(this.engine.containerName(id));
    // The claim made, the rename not (a spawner that died between the two).
    if (member !== undefined && !removed)
      removed = await this.engine.removeContainer(this.engine.containerName(member));
    await this.engine.removeVolume(this.engine.stopMarkerName(id));
    if (member !== undefined) removed = (await this.engine.removeVolume(this.engine.volumeName(member))) || removed;
    removed = (await this.engine.removeVolume(this.engine.volumeName(id))) || removed;
    await this.amendments.removeAll(id);
    // The claim last: until then, what is left is still found as this session.
    if (claim) await this.engine.removeVolume(claim.Name);
    return removed;
  }

  watch(listener: SessionListener): () => void {
    return this.events.follow(listener);
  }

  async owned(): Promise<OwnedObject[]> {
    const filter = { label: ownershipTerms(this.options.deployment) };
    const [containers, volumes, networks] = await Promise.all([
      this.engine.call("list containers", () => this.engine.docker.listContainers({ all: true, filters: filter })),
      this.engine.listVolumes([]),
      this.engine.call("list networks", () => this.engine.docker.listNetworks({ filters: filter })),
    ]);
    return [
      ...containers.map((c) => ({
        kind: "container" as const,
        name: (c.Names[0] ?? c.Id).replace(/^\//, ""),
        sessionId: c.Labels[LABELS.sessionId],
      })),
      ...volumes.map((v) => ({ kind: "volume" as const, name: v.Name, sessionId: v.Labels?.[LABELS.sessionId] })),
      ...networks.map((n) => ({ kind: "network" as const, name: n.Name, sessionId: undefined })),
    ];
  }

  // ---- internals -------------------------------------------------------

  private async start(id: string, container: Docker.Container): Promise<void> {
    try {
      await container.start();
    } catch (error) {
      // 404: a racing delete removed it; 304: it runs already (another replica resumed it first).
      if (statusOf(error) === 404) throw new BackendNotFoundError(`the container of session ${id} was removed`);
      if (statusOf(error) !== 304) throw dockerUnavailable("could not start the session container", error);
    }
  }

  /** Waits until the container runs with an address, then locks its network down; its endpoint. */
  private async runGuarded(id: string, container: Docker.Container, signal: AbortSignal): Promise<Endpoint> {
    const { endpoint, pid, networkGateway } = await this.untilRunning(id, container, signal);
    // The container's own view of its network's gateway is authoritative (the network's listing
    // leaves it out where Docker chose it).
    this.networkGateway = networkGateway ?? this.networkGateway;
    const gateway = this.networkGateway;
    const port = this.options.gatewayPort;
    try {
      await this.guard.apply(pid, gateway !== undefined && port !== undefined ? { host: gateway, port } : undefined);
    } catch (error) {
      // A container that stopped meanwhile has no namespace to guard: its exit is the reason.
      const info = await container.inspect().catch(() => undefined);
      if (info && !info.State.Running) throw new StartFailedError(failureOf(info, "before runnerd answered"));
      throw error;
    }
    return endpoint;
  }

  /** Inspects until the container runs and has an address; a container that stops fails at once. */
  private untilRunning(
    id: string,
    container: Docker.Container,
    signal: AbortSignal,
  ): Promise<{ endpoint: Endpoint; pid: number; networkGateway: string | undefined }> {
    return pRetry(
      async () => {
        let info: Docker.ContainerInspectInfo;
        try {
          info = await container.inspect();
        } catch (error) {
          if (statusOf(error) === 404) {
            throw new AbortError(new BackendNotFoundError(`the container of session ${id} was removed`));
          }
          throw new AbortError(dockerUnavailable("could not inspect the session container", error));
        }
        if (info.State.Status === "exited" || info.State.Status === "dead") {
          throw new AbortError(new StartFailedError(failureOf(info, "before runnerd answered")));
        }
        const endpoint = info.State.Running ? endpointOf(info.NetworkSettings, this.options) : undefined;
        if (!endpoint) throw new Error("not running with an address yet");
        const networkGateway = info.NetworkSettings.Networks?.[this.options.network]?.Gateway || undefined;
        return { endpoint, pid: info.State.Pid, networkGateway };
      },
      { retries: Number.POSITIVE_INFINITY, minTimeout: 20, factor: 1, signal },
    ).catch((error: unknown) => {
      if (signal.aborted && !(error instanceof BackendNotFoundError || error instanceof StartFailedError)) {
        throw new StartTimeoutError("the session container did not get an address in time");
      }
      throw error;
    });
  }

  /** Reads listed objects as sessions and pool members, inspecting each stopped container once. */
  private async inventory(containers: Docker.ContainerInfo[], volumes: VolumeInfo[]) {
    const exits = new Map<string, FailureReason>();
    for (const info of containers) {
      if (info.State !== "exited" && info.State !== "dead") continue;
      const exit = await this.exits.of(info.Id);
      if (exit) exits.set(info.Id, exit);
    }
    return readInventory(
      { containers, volumes, exits },
      {
        network: this.options.network,
        access: this.options.access,
        orphanVolumeGraceMs: this.options.orphanVolumeGraceMs,
        now: Date.now(),
      },
    );
  }
}
