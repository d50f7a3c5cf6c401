import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "@sbx/edge";
import { ANNOTATIONS, type FailureReason, LABELS, type Lease, leaseAnnotations } from "@sbx/protocol";
import Docker from "dockerode";
import { z } from "zod";
import type {
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
  BackendUnavailableError,
  ImageUnavailableError,
  StartFailedError,
  StartTimeoutError,
} from "../backend-errors.js";
import { exitDescription } from "../exit-description.js";
import {
  HOME_PATH,
  memoryBudget,
  RUNNERD_PORT,
  SESSION_GID,
  SESSION_UID,
  WORKSPACE_PATH,
} from "../runtime-contract.js";
import { flatten, LEASE_SEQ, leaseSeqOf, readInventory, type VolumeInfo } from "./docker-inventory.js";

const MiB = 1024 * 1024;
/** Selector label keys: what a listing splits back into labels; the rest of sbx's keys are annotations. */

export interface DockerBackendOptions {
  socket: string;
  deployment: string;
  network: string;
  /**
   * `address`: the container's IP, routed by the host (the spawner runs on the host or in its
   * network namespace); `published`: a port published on 127.0.0.1, where the host cannot route
   * to container addresses.
   */
  access: "address" | "published";
  pull: "if-missing" | "never";
  /**
   * A workspace volume without its container is a create in progress while
   * younger than this, and a container removed out of band after.
   */
  orphanVolumeGraceMs: number;
  /** How long a removed session's processes get between SIGTERM and SIGKILL. */
  stopTimeoutSeconds: number;
}

/**
 * Sessions as Docker containers: one per session on a dedicated bridge
 * network, its workspace on a named volume, locked down (non-root,
 * capabilities dropped, no-new-privileges, read-only root with tmpfs
 * scratch, memory/CPU/pids limits). Labels and annotations both live in the
 * container's labels (and the volume's, so a container removed behind our
 * back is reported as such rather than forgotten).
 */
export class DockerBackend implements SessionBackend {
  readonly kind = "docker";
  private readonly docker: Docker;
  /** Exit facts of stopped containers, by container id: they never change, so each is inspected once. */
  private readonly exits = new Map<string, FailureReason>();
  /** The latest lookup after an event, by session id (see `report`). */
  private readonly reporting = new Map<string, Promise<void>>();

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

  /** An empty volume, one per pool member, that holds the truth of the session that claimed it. */
  claimName(memberId: string): string {
    return `sbx-${this.options.deployment}-${memberId}-claim`;
  }

  /** An empty volume whose labels hold the lease a session was given after its create (`seq`: the newest wins). */
  leaseName(id: string, seq: number): string {
    return `sbx-${this.options.deployment}-${id}-lease-${seq}`;
  }

  /** An empty volume that marks a session as stopped by the spawner. */
  stopMarkerName(id: string): string {
    return `sbx-${this.options.deployment}-${id}-stopped`;
  }

  async init(): Promise<void> {
    const existing = await this.call("list networks", () =>
      this.docker.listNetworks({ filters: { name: [this.options.network] } }),
    );
    const network = existing.find((n) => n.Name === this.options.network);
    if (network) {
      // A network made by an older version, or by hand, may let sessions talk to each other.
      if (network.Options?.["com.docker.network.bridge.enable_icc"] !== "false") {
        throw new BackendUnavailableError(
          `network ${this.options.network} lets containers reach each other; sessions need it isolated. Remove it (docker network rm ${this.options.network}, after its containers) and the spawner makes it anew`,
        );
      }
      return;
    }
    try {
      await this.docker.createNetwork({
        Name: this.options.network,
        Driver: "bridge",
        CheckDuplicate: true,
        Labels: this.ownership(),
        // No session may reach another: the spawner reaches each runnerd from the host (by
        // address, or through a port published on 127.0.0.1), never across the bridge.
        Options: { "com.docker.network.bridge.enable_icc": "false" },
      });
      this.log.info({ network: this.options.network }, "created session network");
    } catch (error) {
      if (statusOf(error) !== 409) throw unavailable("could not create the session network", error);
    }
  }

  async ping(): Promise<void> {
    await this.call("reach the Docker engine", () => this.docker.ping());
  }

  async create(spec: BackendSessionSpec, signal: AbortSignal): Promise<BackendSession> {
    // The image first: a pull may take long, and a workspace volume must not wait alone
    // meanwhile (a volume without its container soon counts as a removed session).
    await this.ensureImage(spec.image);
    if (signal.aborted) throw new StartTimeoutError("the create's deadline passed before the session was made");
    const volume = this.volumeName(spec.id);
    const objectLabels = { ...flatten(spec.meta), ...this.ownership() };
    await this.call("create the workspace volume", () =>
      this.docker.createVolume({ Name: volume, Labels: objectLabels }),
    );
    let container: Docker.Container;
    try {
      container = await this.createContainer(spec, volume, objectLabels);
    } catch (error) {
      // Someone else's container: its volume is theirs too.
      if (error instanceof BackendConflictError) throw error;
      await this.removeVolume(volume);
      throw error;
    }
    try {
      try {
        await container.start();
      } catch (error) {
        // 404: a racing delete removed it between create and start.
        if (statusOf(error) === 404) throw new BackendNotFoundError(`the container of session ${spec.id} was removed`);
        throw unavailable("could not start the session container", error);
      }
      const endpoint = await this.waitForEndpoint(spec.id, container, signal);
      return { id: spec.id, meta: spec.meta, state: { phase: "running" }, endpoint };
    } catch (error) {
      await this.destroy(spec.id);
      throw error;
    }
  }

  async find(id: string): Promise<BackendSession | undefined> {
    // Its own container, or its claim and the pool member it claimed, or volumes alone.
    const [containers, volumes] = await Promise.all([
      this.listContainers([`${LABELS.sessionId}=${id}`]),
      this.listVolumes([`${LABELS.sessionId}=${id}`]),
    ]);
    const member = volumes.map((v) => v.Labels?.[ANNOTATIONS.poolMember]).find((m) => m !== undefined);
    if (member !== undefined) containers.push(...(await this.listContainers([`${LABELS.sessionId}=${member}`])));
    if (member !== undefined) volumes.push(...(await this.listVolumes([`${LABELS.sessionId}=${member}`])));
    return (await this.inventory(containers, volumes)).sessions.find((s) => s.id === id);
  }

  async list(): Promise<BackendSession[]> {
    const [containers, volumes] = await Promise.all([this.listContainers([]), this.listVolumes([])]);
    return (await this.inventory(containers, volumes)).sessions;
  }

  async listPool(): Promise<PoolMember[]> {
    const [containers, volumes] = await Promise.all([this.listContainers([LABELS.pool]), this.listVolumes([])]);
    return (await this.inventory(containers, volumes)).members;
  }

  async claim(member: PoolMember, meta: SessionMeta): Promise<BackendSession> {
    const { memberId } = member;
    const id = meta.labels[LABELS.sessionId];
    if (id === undefined) throw new Error("a claim needs the session's id");
    // The engine makes a volume of a given name once and answers later creates with the first
    // one: of claims racing for a member, the one whose labels the volume has is the winner. Docker
    // labels never change, so that volume is also where the session's truth lives from now on.
    const claim = this.claimName(memberId);
    let holder: string | undefined;
    try {
      // The engine's answer is the volume as it is: ours, or the first claim's.
      const made = await this.createVolumeAsIs({
        Name: claim,
        Labels: { ...flatten(meta), ...this.ownership(), [ANNOTATIONS.poolMember]: memberId },
      });
      holder = made.Labels?.[LABELS.sessionId];
    } catch (error) {
      throw unavailable("could not claim a pool member", error);
    }
    if (holder !== id) throw new BackendConflictError(`pool member ${memberId} was claimed by another session`);
    // The container takes the session's name (it keeps running as it did, with its address).
    try {
      await this.docker.getContainer(this.containerName(memberId)).rename({ name: this.containerName(id) });
    } catch (error) {
      await this.removeVolume(claim).catch((cleanup: unknown) => {
        this.log.error({ sessionId: id, err: cleanup }, "could not withdraw a claim");
      });
      if (statusOf(error) === 404) throw new BackendConflictError(`pool member ${memberId} is gone`);
      if (statusOf(error) === 409) throw new BackendConflictError(`a session ${id} exists`);
      throw unavailable("could not claim a pool member", error);
    }
    return { id, meta, state: { phase: "running" }, endpoint: member.endpoint };
  }

  async tryLock(name: string, options: { ttlMs: number; image: string }): Promise<HeldLock | undefined> {
    const lock = `sbx-${this.options.deployment}-lock-${name}`;
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        // A container is the one object whose name the engine refuses to give twice. Never started;
        // its id tells this taking from a later one.
        const made = await this.docker.createContainer({
          name: lock,
          Image: options.image,
          Labels: { ...this.ownership(), [LOCK_EXPIRES]: String(Date.now() + options.ttlMs) },
        });
        return { name, token: made.id };
      } catch (error) {
        if (statusOf(error) !== 409) throw unavailable("could not take a lock", error);
      }
      // Held: by a live holder, or by one that died (then the lock has expired and is broken).
      const held = await this.docker
        .getContainer(lock)
        .inspect()
        .catch((error: unknown) => {
          if (statusOf(error) === 404) return undefined;
          throw unavailable("could not read a lock", error);
        });
      const expires = Number(held?.Config.Labels?.[LOCK_EXPIRES] ?? 0);
      if (held && expires > Date.now()) return undefined;
      // Broken by its id: a lock another replica has just taken anew (a new container) stays.
      if (held)
        await this.docker
          .getContainer(held.Id)
          .remove({ force: true })
          .catch((error: unknown) => {
            if (statusOf(error) !== 404 && statusOf(error) !== 409) throw unavailable("could not break a lock", error);
          });
    }
    return undefined;
  }

  async unlock(lock: HeldLock): Promise<void> {
    try {
      // By its id: once it expired and another replica took the name, that lock is not this one.
      await this.docker.getContainer(lock.token).remove({ force: true });
    } catch (error) {
      if (statusOf(error) !== 404 && statusOf(error) !== 409) throw unavailable("could not release a lock", error);
    }
  }

  async currentImageId(image: string): Promise<string | undefined> {
    try {
      return (await this.docker.getImage(image).inspect()).Id;
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw unavailable(`could not inspect image ${image}`, error);
    }
  }

  async stop(id: string): Promise<void> {
    // The mark first: every replica then reads the container's ending as a stop.
    const marker = this.stopMarkerName(id);
    await this.removeVolume(marker);
    await this.call("record the stop", () =>
      this.docker.createVolume({
        Name: marker,
        Labels: {
          ...this.ownership(),
          [LABELS.sessionId]: id,
          [ANNOTATIONS.stoppedAt]: String(Date.now()),
        },
      }),
    );
    try {
      // SIGTERM: runnerd ends running execs (`interrupted`), keeps its state on the volume, exits 0.
      await this.docker.getContainer(this.containerName(id)).stop({ t: this.options.stopTimeoutSeconds });
    } catch (error) {
      if (statusOf(error) === 304) return; // already stopped
      await this.removeVolume(marker);
      if (statusOf(error) === 404) throw new BackendNotFoundError(`the container of session ${id} is gone`);
      throw unavailable("could not stop the session container", error);
    }
  }

  async setLease(id: string, lease: Lease): Promise<void> {
    const session = await this.find(id);
    if (!session) throw new BackendNotFoundError(`no session ${id}`);
    const createdAt = session.meta.annotations[ANNOTATIONS.createdAt] ?? "";
    const earlier = await this.leaseVolumes(id);
    let seq = Math.max(-1, ...earlier.map((v) => v.seq)) + 1;
    // A volume's name is given once: of replicas setting a lease at once, each ends on its own
    // sequence, and the highest is the lease every lookup reads.
    for (let attempt = 0; ; attempt++, seq++) {
      const labels = {
        ...this.ownership(),
        [LABELS.sessionId]: id,
        [ANNOTATIONS.createdAt]: createdAt,
        [LEASE_SEQ]: String(seq),
        ...leaseAnnotations(lease),
      };
      const made = await this.call("record the lease", () =>
        this.createVolumeAsIs({ Name: this.leaseName(id, seq), Labels: labels }),
      );
      const ours = Object.entries(labels).every(([key, value]) => made.Labels?.[key] === value);
      if (ours) break;
      if (attempt >= 8)
        throw new BackendUnavailableError(`could not record the lease of session ${id}: too many at once`);
    }
    await Promise.all(
      earlier.map((v) =>
        this.removeVolume(v.name).catch((error: unknown) =>
          this.log.warn({ sessionId: id, err: error }, "could not remove an earlier lease"),
        ),
      ),
    );
  }

  /** The session's lease volumes, with their sequence numbers. */
  private async leaseVolumes(id: string): Promise<Array<{ name: string; seq: number }>> {
    const volumes = await this.listVolumes([`${LABELS.sessionId}=${id}`, LEASE_SEQ]);
    return volumes.flatMap((v) => {
      const seq = leaseSeqOf(v.Labels ?? {});
      return seq === undefined ? [] : [{ name: v.Name, seq }];
    });
  }

  async resume(spec: BackendSessionSpec, signal: AbortSignal): Promise<BackendSession> {
    const container = this.docker.getContainer(this.containerName(spec.id));
    this.exits.clear();
    try {
      await container.start();
    } catch (error) {
      // 304: it runs already (another replica resumed it first).
      if (statusOf(error) === 404) throw new BackendNotFoundError(`the container of session ${spec.id} is gone`);
      if (statusOf(error) !== 304) throw unavailable("could not start the session container", error);
    }
    const endpoint = await this.waitForEndpoint(spec.id, container, signal);
    await this.removeVolume(this.stopMarkerName(spec.id));
    return { id: spec.id, meta: spec.meta, state: { phase: "running" }, endpoint };
  }

  async destroy(id: string): Promise<boolean> {
    // A claimed member belongs to its session now: only the session's destroy removes it.
    if (await this.volumeExists(this.claimName(id))) return false;
    // A session claimed from the pool: its claim names the member (container and workspace).
    const claim = (await this.listVolumes([`${LABELS.sessionId}=${id}`])).find(
      (v) => v.Labels?.[ANNOTATIONS.poolMember] !== undefined,
    );
    const member = claim?.Labels?.[ANNOTATIONS.poolMember];
    let removed = await this.removeContainer(this.containerName(id));
    // The claim made, the rename not (a spawner that died between the two).
    if (member !== undefined && !removed) removed = await this.removeContainer(this.containerName(member));
    await this.removeVolume(this.stopMarkerName(id));
    if (member !== undefined) removed = (await this.removeVolume(this.volumeName(member))) || removed;
    removed = (await this.removeVolume(this.volumeName(id))) || removed;
    for (const lease of await this.leaseVolumes(id)) await this.removeVolume(lease.name);
    // The claim last: until then, what is left is still found as this session.
    if (claim) await this.removeVolume(claim.Name);
    return removed;
  }

  /** Creates a volume (or finds it made already) and returns the engine's account of it (dockerode's keeps only the name). */
  private createVolumeAsIs(options: Docker.VolumeCreateOptions): Promise<z.infer<typeof CreatedVolumeSchema>> {
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

  /** True when the container was there to remove. */
  private async removeContainer(name: string): Promise<boolean> {
    try {
      await this.docker.getContainer(name).remove({ force: true });
      return true;
    } catch (error) {
      // 404: already gone; 409: a removal is already in progress (another replica).
      if (statusOf(error) !== 404 && statusOf(error) !== 409)
        throw unavailable("could not remove the container", error);
      return false;
    }
  }

  private async volumeExists(name: string): Promise<boolean> {
    try {
      await this.docker.getVolume(name).inspect();
      return true;
    } catch (error) {
      if (statusOf(error) === 404) return false;
      throw unavailable(`could not read volume ${name}`, error);
    }
  }

  watch(listener: SessionListener): () => void {
    const controller = new AbortController();
    // Events from this moment on, including those that happen while the stream connects, and
    // after a break, those since the last one seen: the engine replays them.
    let since = Date.now() / 1000;
    const follow = async () => {
      while (!controller.signal.aborted) {
        try {
          const stream = await this.docker.getEvents({
            since: Math.floor(since * 1000) / 1000,
            // Container events carry the container's labels; network events (a container
            // disconnected from the sessions' bridge) carry the network's, which are ours too.
            filters: { type: ["container", "network"], label: this.ownershipFilter() },
            abortSignal: controller.signal,
          });
          let pending = "";
          for await (const chunk of stream) {
            pending += chunk.toString();
            let newline = pending.indexOf("\n");
            while (newline >= 0) {
              const line = pending.slice(0, newline);
              pending = pending.slice(newline + 1);
              newline = pending.indexOf("\n");
              const event = parseEvent(line);
              if (event === undefined) continue;
              since = Math.max(since, event.timeNano / 1e9);
              if (event.Type === "container") this.exits.delete(event.Actor.ID);
              const id = event.Actor.Attributes[LABELS.sessionId];
              const ending = ENDING_ACTIONS.has(event.Action);
              // A pool member's container speaks for the session that claimed it, if one did.
              if (id !== undefined && event.Actor.Attributes[LABELS.pool] !== undefined) {
                void this.reportClaimed(id, ending, listener);
              } else if (id !== undefined) {
                this.report(id, ending, listener);
              }
              const container = event.Type === "network" ? event.Actor.Attributes.container : undefined;
              if (container !== undefined) void this.reportContainer(container, listener);
            }
          }
        } catch (error) {
          if (controller.signal.aborted) return;
          this.log.warn({ err: error }, "Docker event stream broke; following again in 1 s");
        }
        await delay(1000, undefined, { signal: controller.signal }).catch(() => undefined);
      }
    };
    void follow();
    return () => controller.abort();
  }

  async owned(): Promise<OwnedObject[]> {
    const filter = { label: this.ownershipFilter() };
    const [containers, volumes, networks] = await Promise.all([
      this.call("list containers", () => this.docker.listContainers({ all: true, filters: filter })),
      this.listVolumes([]),
      this.call("list networks", () => this.docker.listNetworks({ filters: filter })),
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

  private async reportClaimed(memberId: string, ending: boolean, listener: SessionListener): Promise<void> {
    try {
      const claim = await this.docker.getVolume(this.claimName(memberId)).inspect();
      const id = claim.Labels?.[LABELS.sessionId];
      if (id !== undefined) this.report(id, ending, listener);
    } catch (error) {
      if (statusOf(error) === 404) return; // an unclaimed member: no session to speak of
      this.log.warn({ err: error }, "could not look up the session of a pool member after an event");
    }
  }

  /** A network event names a container, not a session: find whose it is. */
  private async reportContainer(containerId: string, listener: SessionListener): Promise<void> {
    try {
      const info = await this.docker.getContainer(containerId).inspect();
      const id = info.Config.Labels?.[LABELS.sessionId];
      if (id !== undefined && info.Config.Labels?.[LABELS.pool] !== undefined)
        await this.reportClaimed(id, false, listener);
      else if (id !== undefined) this.report(id, false, listener);
    } catch (error) {
      if (statusOf(error) !== 404) this.log.warn({ err: error }, "could not look up a container after a network event");
    }
  }

  /**
   * Looks a session up after an event and reports it. Lookups of one session
   * run one after another, so reports land in the order of the events and
   * the last one reflects the latest state.
   */
  private report(id: string, ending: boolean, listener: SessionListener): void {
    const previous = this.reporting.get(id) ?? Promise.resolve();
    const next = previous.then(async () => {
      try {
        let observedAt = performance.now();
        let session = await this.find(id);
        // The engine announces a death before its listing shows it: look again until it does.
        for (let attempt = 0; ending && session && isAlive(session) && attempt < 30; attempt++) {
          await delay(100);
          observedAt = performance.now();
          session = await this.find(id);
        }
        listener(id, session, observedAt);
      } catch (error) {
        this.log.warn({ sessionId: id, err: error }, "could not look up a session after a Docker event");
      }
    });
    this.reporting.set(id, next);
    void next.then(() => {
      if (this.reporting.get(id) === next) this.reporting.delete(id);
    });
  }

  private async createContainer(
    spec: BackendSessionSpec,
    volume: string,
    labels: Record<string, string>,
  ): Promise<Docker.Container> {
    const scratch = memoryBudget(spec.resources.memoryMb).tmpfsMb;
    const options: Docker.ContainerCreateOptions = {
      name: this.containerName(spec.id),
      Image: spec.image,
      Labels: labels,
      Env: Object.entries(spec.runnerdEnv).map(([k, v]) => `${k}=${v}`),
      User: `${SESSION_UID}:${SESSION_GID}`,
      WorkingDir: WORKSPACE_PATH,
      ExposedPorts: { [`${RUNNERD_PORT}/tcp`]: {} },
      StopTimeout: this.options.stopTimeoutSeconds,
      HostConfig: {
        NetworkMode: this.options.network,
        ...(this.options.access === "published"
          ? { PortBindings: { [`${RUNNERD_PORT}/tcp`]: [{ HostIp: "127.0.0.1", HostPort: "" }] } }
          : {}),
        Mounts: [{ Type: "volume", Source: volume, Target: WORKSPACE_PATH }],
        Tmpfs: {
          // Sized inside the memory limit, which tmpfs pages count against: full is ENOSPC, not an OOM kill.
          "/tmp": `rw,nosuid,nodev,size=${scratch.tmp}m,mode=1777`,
          [HOME_PATH]: `rw,nosuid,nodev,size=${scratch.home}m,uid=${SESSION_UID},gid=${SESSION_GID},mode=0755`,
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
      // 404: the image went away since ensureImage (or the volume did: a racing delete).
      if (statusOf(error) === 404) {
        throw new ImageUnavailableError(spec.image, `image ${spec.image} is not present`, { cause: error });
      }
      throw unavailable("could not create the session container", error);
    }
  }

  /** The image is here, or is pulled (unless pulling is off). */
  private async ensureImage(image: string): Promise<void> {
    try {
      await this.docker.getImage(image).inspect();
      return;
    } catch (error) {
      if (statusOf(error) !== 404) throw unavailable(`could not inspect image ${image}`, error);
    }
    if (this.options.pull === "never") {
      throw new ImageUnavailableError(image, `image ${image} is not present and pulling is disabled`);
    }
    await this.pull(image);
  }

  private async pull(image: string): Promise<void> {
    this.log.info({ image }, "pulling image");
    try {
      const stream = await this.docker.pull(image);
      await new Promise<void>((resolve, reject) => {
        this.docker.modem.followProgress(stream, (error: Error | null) => (error ? reject(error) : resolve()));
      });
    } catch (error) {
      throw new ImageUnavailableError(image, `image ${image} is not present and could not be pulled`, {
        cause: error,
      });
    }
  }

  /** Inspects until the container runs and has an address; a container that stops fails at once. */
  private async waitForEndpoint(id: string, container: Docker.Container, signal: AbortSignal): Promise<Endpoint> {
    for (;;) {
      let info: Docker.ContainerInspectInfo;
      try {
        info = await container.inspect();
      } catch (error) {
        if (statusOf(error) === 404) throw new BackendNotFoundError(`the container of session ${id} was removed`);
        throw unavailable("could not inspect the session container", error);
      }
      if (info.State.Running) {
        const endpoint = this.endpointOf(info.NetworkSettings);
        if (endpoint) return endpoint;
      } else if (info.State.Status === "exited" || info.State.Status === "dead") {
        throw new StartFailedError(failureOf(info, "before runnerd answered"));
      }
      if (signal.aborted) throw new StartTimeoutError("the session container did not get an address in time");
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

  /** Reads listed objects as sessions and pool members, inspecting each stopped container once. */
  private async inventory(containers: Docker.ContainerInfo[], volumes: VolumeInfo[]) {
    const exits = new Map<string, FailureReason>();
    for (const info of containers) {
      if (info.State !== "exited" && info.State !== "dead") continue;
      const exit = await this.exitOf(info.Id);
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

  private listContainers(extraLabels: string[]): Promise<Docker.ContainerInfo[]> {
    return this.call("list containers", () =>
      this.docker.listContainers({ all: true, filters: { label: [...this.ownershipFilter(), ...extraLabels] } }),
    );
  }

  /** Why a stopped container stopped, from one inspect kept for its lifetime. */
  private async exitOf(containerId: string): Promise<FailureReason | undefined> {
    const known = this.exits.get(containerId);
    if (known) return known;
    let info: Docker.ContainerInspectInfo;
    try {
      info = await this.docker.getContainer(containerId).inspect();
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw unavailable("could not inspect a stopped session container", error);
    }
    const reason = failureOf(info, "");
    // Kept until the container's next event (a resume starts it again, and it ends anew).
    if (this.exits.size > 1000) this.exits.clear();
    this.exits.set(containerId, reason);
    return reason;
  }

  private async listVolumes(extraLabels: string[]): Promise<VolumeInfo[]> {
    const result = await this.call("list volumes", () =>
      this.docker.listVolumes({ filters: { label: [...this.ownershipFilter(), ...extraLabels] } }),
    );
    return result.Volumes ?? [];
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
      throw unavailable(`could not ${what}`, error);
    }
  }
}

/** On a lock container: when the lock lapses if its holder never releases it. */
const LOCK_EXPIRES = "sbx.dev/lock-expires";
const CreatedVolumeSchema = z.object({ Name: z.string(), Labels: z.record(z.string(), z.string()).nullish() });

function failureOf(info: Docker.ContainerInspectInfo, when: string): FailureReason {
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

/** The part of a Docker event that matters here: the container's labels travel as attributes. */
/** Events after which a container no longer runs. */
const ENDING_ACTIONS: ReadonlySet<string> = new Set(["die", "oom", "destroy"]);

function isAlive(session: BackendSession): boolean {
  return session.state.phase === "running" || session.state.phase === "starting";
}

const DockerEventSchema = z.object({
  Type: z.string(),
  Action: z.string(),
  timeNano: z.number(),
  Actor: z.object({ ID: z.string(), Attributes: z.record(z.string(), z.string()) }),
});

function parseEvent(line: string): z.infer<typeof DockerEventSchema> | undefined {
  if (line.trim() === "") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (error) {
    throw new BackendUnavailableError("the Docker event stream sent something other than JSON", { cause: error });
  }
  const event = DockerEventSchema.safeParse(parsed);
  return event.success ? event.data : undefined;
}

function statusOf(error: unknown): number | undefined {
  return error instanceof Error && "statusCode" in error && typeof error.statusCode === "number"
    ? error.statusCode
    : undefined;
}

function unavailable(what: string, error: unknown): BackendUnavailableError {
  if (error instanceof BackendUnavailableError) return error;
  const reason = error instanceof Error ? error.message.replace(/^\(HTTP code \d+\)\s*/, "") : String(error);
  return new BackendUnavailableError(`${what}: ${reason}`, { cause: error });
}
