import { AMENDABLE_ANNOTATIONS, ANNOTATIONS, type FailureReason, LABELS } from "@sbx/protocol";
import type Docker from "dockerode";
import type { BackendSession, BackendState, Endpoint, PoolMember, SessionMeta } from "../backend.js";
import { sessionMetaOf } from "../core/session-meta.js";
import { RUNNERD_PORT } from "../runtime-contract.js";

export type VolumeInfo = Docker.VolumeInspectInfo & { CreatedAt?: string };

/** What the engine listed, with the exit facts of the containers that have stopped (by container id). */
export interface EngineObjects {
  containers: Docker.ContainerInfo[];
  volumes: VolumeInfo[];
  exits: ReadonlyMap<string, FailureReason>;
}

export interface InventorySettings {
  network: string;
  access: "address" | "published";
  /** A workspace volume without its container is a create in progress while younger than this. */
  orphanVolumeGraceMs: number;
  now: number;
}

/** The sessions and the unclaimed pool members those objects make. */
export interface Inventory {
  sessions: BackendSession[];
  members: PoolMember[];
}

/**
 * On an amendment volume: its place in the order of a session's changes. Docker labels never
 * change, so what a PATCH changes (lease, egress policy) is a volume of its own,
 * `…-amended-<seq>`, holding every amended annotation so far; the highest sequence is current.
 */
export const AMENDMENT_SEQ = "sbx.dev/amended-seq";

/**
 * How a deployment's Docker objects read as sessions. Containers carry the
 * truth of sessions created cold; a warm pool member is a container labelled
 * with its pool, and once claimed (renamed to the session's name) its
 * session's truth lives on a claim volume, since Docker labels never change;
 * (one per member: the engine makes a volume of a name once, so of racing
 * claims the first one's labels stay); a stop marker volume says a stopped container was stopped by
 * the spawner; an amendment volume holds what a PATCH changed; a workspace volume alone is a
 * create in progress or a container removed behind our back.
 */
export function readInventory(objects: EngineObjects, settings: InventorySettings): Inventory {
  const stops = new Map<string, Record<string, string>>();
  const claims = new Map<string, Record<string, string>>();
  const amendments = new Map<string, { seq: number; labels: Record<string, string> }>();
  const workspaces: VolumeInfo[] = [];
  for (const volume of objects.volumes) {
    const labels = volume.Labels ?? {};
    const id = labels[LABELS.sessionId];
    const member = labels[ANNOTATIONS.poolMember];
    if (id === undefined) continue;
    const seq = amendmentSeqOf(labels);
    if (seq !== undefined) {
      if (seq > (amendments.get(id)?.seq ?? -1)) amendments.set(id, { seq, labels });
    } else if (labels[ANNOTATIONS.stoppedAt] !== undefined) stops.set(id, labels);
    else if (member !== undefined) claims.set(member, labels);
    else workspaces.push(volume);
  }

  const sessions: BackendSession[] = [];
  const members: PoolMember[] = [];
  /** A session's meta with its latest amendments (those of an earlier session of the same id do not count). */
  const metaOf = (labels: Record<string, string>): SessionMeta => {
    const meta = split(labels);
    const id = meta.labels[LABELS.sessionId];
    const amended = id === undefined ? undefined : amendments.get(id)?.labels;
    if (amended === undefined || amended[ANNOTATIONS.createdAt] !== meta.annotations[ANNOTATIONS.createdAt])
      return meta;
    const changes = Object.fromEntries(Object.entries(amended).filter(([key]) => AMENDABLE_ANNOTATIONS.includes(key)));
    return { ...meta, annotations: { ...meta.annotations, ...changes } };
  };
  const withContainer = new Set<string>();
  for (const info of objects.containers) {
    const id = info.Labels[LABELS.sessionId];
    if (id === undefined) continue;
    withContainer.add(id);
    const pool = info.Labels[LABELS.pool];
    const claim = pool === undefined ? undefined : claims.get(id);
    if (pool !== undefined && claim === undefined) {
      const { state, endpoint } = stateOf(info, undefined, objects.exits, settings);
      if (!state) continue;
      const annotations = split(info.Labels).annotations;
      members.push({
        memberId: id,
        profile: pool,
        image: annotations[ANNOTATIONS.image] ?? info.Image,
        imageId: info.ImageID,
        state,
        endpoint,
        createdAt: Number(annotations[ANNOTATIONS.createdAt] ?? info.Created * 1000),
      });
      continue;
    }
    // A claimed member is its claim's session; any other container is its own.
    const labels = claim ?? info.Labels;
    const sessionId = labels[LABELS.sessionId] ?? id;
    const { state, endpoint, address } = stateOf(info, stops.get(sessionId), objects.exits, settings);
    if (state) sessions.push({ id: sessionId, meta: metaOf(labels), state, endpoint, address });
  }

  for (const volume of workspaces) {
    const labels = volume.Labels ?? {};
    const id = labels[LABELS.sessionId];
    if (id === undefined || withContainer.has(id)) continue;
    const pool = labels[LABELS.pool];
    if (pool !== undefined) {
      // A pool member's workspace whose container is gone: claimed (its session lost its container) or not.
      if (claims.has(id)) continue; // reported from the claim below
      members.push({
        memberId: id,
        profile: pool,
        image: labels[ANNOTATIONS.image] ?? "",
        imageId: undefined,
        state: orphanState(volume, settings),
        endpoint: undefined,
        createdAt: Number(labels[ANNOTATIONS.createdAt] ?? 0),
      });
      continue;
    }
    sessions.push({ id, meta: metaOf(labels), state: orphanState(volume, settings), endpoint: undefined });
  }
  for (const [member, labels] of claims) {
    const id = labels[LABELS.sessionId];
    if (id === undefined || withContainer.has(member)) continue;
    sessions.push({ id, meta: metaOf(labels), state: { phase: "failed", reason: removed() }, endpoint: undefined });
  }
  return { sessions, members };
}

/** Docker keeps both layers as labels: sbx's selector keys are labels, its other keys annotations. */
export function split(all: Record<string, string>): SessionMeta {
  return sessionMetaOf(all, all);
}

function stateOf(
  info: Docker.ContainerInfo,
  stop: Record<string, string> | undefined,
  exits: ReadonlyMap<string, FailureReason>,
  settings: InventorySettings,
): { state: BackendState | undefined; endpoint: Endpoint | undefined; address?: string | undefined } {
  const address = info.NetworkSettings?.Networks?.[settings.network]?.IPAddress || undefined;
  let endpoint: Endpoint | undefined;
  if (settings.access === "address") {
    const ip = info.NetworkSettings?.Networks?.[settings.network]?.IPAddress;
    endpoint = ip ? { host: ip, port: RUNNERD_PORT } : undefined;
  } else {
    const port = info.Ports.find((p) => p.PrivatePort === RUNNERD_PORT && p.PublicPort > 0)?.PublicPort;
    endpoint = port ? { host: "127.0.0.1", port } : undefined;
  }
  switch (info.State) {
    case "running":
    case "paused":
      // Marked for a stop that is under way; or running (without an address if its network was
      // taken away: unreachable, not starting).
      return { state: stop ? { phase: "stopping" } : { phase: "running" }, endpoint, address };
    case "created":
    case "restarting":
      return { state: { phase: "starting" }, endpoint };
    case "removing":
      return { state: { phase: "terminating" }, endpoint };
    default: {
      const exit = exits.get(info.Id);
      if (exit === undefined) return { state: undefined, endpoint: undefined }; // removed while we looked
      // runnerd exits 0 only when stopped (SIGTERM, by the spawner or by `docker stop`): its state
      // is on the volume and the session can resume. Anything else is a death.
      const state: BackendState =
        exit.code === "exited" && exit.exitCode === 0
          ? { phase: "stopped", at: stoppedAt(stop) ?? exit.at }
          : { phase: "failed", reason: exit };
      return { state, endpoint: undefined };
    }
  }
}

function orphanState(volume: VolumeInfo, settings: InventorySettings): BackendState {
  const createdAt = volume.CreatedAt ? Date.parse(volume.CreatedAt) : Number.NaN;
  const young = !Number.isFinite(createdAt) || settings.now - createdAt < settings.orphanVolumeGraceMs;
  return young ? { phase: "starting" } : { phase: "failed", reason: removed() };
}

function removed(): FailureReason {
  return { code: "removed", message: "the session container was removed by someone other than the spawner", at: null };
}

function stoppedAt(labels: Record<string, string> | undefined): number | null {
  const at = Number(labels?.[ANNOTATIONS.stoppedAt]);
  return Number.isFinite(at) && at > 0 ? at : null;
}

/** The sequence of an amendment volume; undefined on any other volume. */
export function amendmentSeqOf(labels: Record<string, string>): number | undefined {
  const text = labels[AMENDMENT_SEQ];
  return text !== undefined && /^\d{1,9}$/.test(text) ? Number(text) : undefined;
}
