import {
  ANNOTATIONS,
  DEFAULT_EGRESS_PORTS,
  type EgressPolicy,
  egressAnnotations,
  egressOfAnnotations,
  isLabelValue,
  LABELS,
  leaseAnnotations,
  leaseOfAnnotations,
} from "@sbx/protocol";
import type { SessionMeta } from "../backends/backend.js";

/** A session's durable facts, exactly what its backend objects' labels and annotations carry. */
export interface SessionRecord {
  id: string;
  org: string;
  owner: string | null;
  profile: string;
  image: string;
  createdAt: number;
  /** The lease: set at create, changed by a PATCH, always read back from the platform's objects. */
  expiresAt: number;
  idleTimeoutMs: number;
  resources: { cpus: number; memoryMb: number; pids: number };
  /** The caller's own labels. */
  labels: Record<string, string>;
  /** The egress policy in effect: set at create, changed by a PATCH. */
  network: EgressPolicy;
  specDigest: string;
  /** The workspace as created (a resume on Kubernetes makes the Pod again around it). */
  workspace: { persistent: boolean; sizeMb: number; storageClass: string | undefined };
  /** What its runnerd's token derives from: the session id, or the warm pool member it was claimed from. */
  runnerdKey: string;
}

/** Sessions created before the workspace was recorded had the default, ephemeral one. */
const DEFAULT_WORKSPACE = { persistent: false, sizeMb: 10 * 1024, storageClass: undefined };

/**
 * The record in two layers: selector labels (session id and org, short and
 * of a label's alphabet) and annotations for the rest. Throws when a label
 * value could not be held by every backend: request validation should have
 * refused it before.
 */
export function metaOf(record: SessionRecord): SessionMeta {
  const labels = { [LABELS.sessionId]: record.id, [LABELS.org]: record.org };
  for (const [key, value] of Object.entries(labels)) {
    if (!isLabelValue(value) || value === "") throw new Error(`label ${key} cannot hold ${JSON.stringify(value)}`);
  }
  const annotations: Record<string, string> = {
    [ANNOTATIONS.profile]: record.profile,
    [ANNOTATIONS.image]: record.image,
    [ANNOTATIONS.createdAt]: String(record.createdAt),
    ...leaseAnnotations({ expiresAt: record.expiresAt, idleTimeoutMs: record.idleTimeoutMs }),
    ...egressAnnotations(record.network),
    [ANNOTATIONS.cpus]: String(record.resources.cpus),
    [ANNOTATIONS.memoryMb]: String(record.resources.memoryMb),
    [ANNOTATIONS.pids]: String(record.resources.pids),
    [ANNOTATIONS.specDigest]: record.specDigest,
    [ANNOTATIONS.workspace]: workspaceText(record.workspace),
  };
  if (record.owner !== null) annotations[ANNOTATIONS.owner] = record.owner;
  if (record.runnerdKey !== record.id) annotations[ANNOTATIONS.poolMember] = record.runnerdKey;
  for (const [key, value] of Object.entries(record.labels)) annotations[`${ANNOTATIONS.userPrefix}${key}`] = value;
  return { labels, annotations };
}

/** Rebuilds a record from its two layers; undefined when they are not a complete sbx session (never guessed). */
export function recordFromMeta(meta: SessionMeta): SessionRecord | undefined {
  const { labels, annotations } = meta;
  const number = (key: string) => {
    const value = annotations[key];
    const parsed = value === undefined || value === "" ? Number.NaN : Number(value);
    return Number.isFinite(parsed) ? parsed : undefined;
  };
  const id = labels[LABELS.sessionId];
  const org = labels[LABELS.org];
  const profile = annotations[ANNOTATIONS.profile];
  const image = annotations[ANNOTATIONS.image];
  const specDigest = annotations[ANNOTATIONS.specDigest];
  const createdAt = number(ANNOTATIONS.createdAt);
  const lease = leaseOfAnnotations(annotations);
  const cpus = number(ANNOTATIONS.cpus);
  const memoryMb = number(ANNOTATIONS.memoryMb);
  const pids = number(ANNOTATIONS.pids);
  if (
    id === undefined ||
    org === undefined ||
    profile === undefined ||
    image === undefined ||
    specDigest === undefined ||
    createdAt === undefined ||
    lease === undefined ||
    cpus === undefined ||
    memoryMb === undefined ||
    pids === undefined
  ) {
    return undefined;
  }
  const userLabels: Record<string, string> = {};
  for (const [key, value] of Object.entries(annotations)) {
    if (key.startsWith(ANNOTATIONS.userPrefix)) userLabels[key.slice(ANNOTATIONS.userPrefix.length)] = value;
  }
  return {
    id,
    org,
    owner: annotations[ANNOTATIONS.owner] ?? null,
    profile,
    image,
    createdAt,
    expiresAt: lease.expiresAt,
    idleTimeoutMs: lease.idleTimeoutMs,
    resources: { cpus, memoryMb, pids },
    labels: userLabels,
    // Sessions made before egress policies existed had nothing out: deny.
    network: egressOfAnnotations(annotations) ?? { egress: "deny", allow: [], ports: [...DEFAULT_EGRESS_PORTS] },
    specDigest,
    workspace: workspaceOf(annotations[ANNOTATIONS.workspace]),
    runnerdKey: annotations[ANNOTATIONS.poolMember] ?? id,
  };
}

/** A workspace as its annotation holds it: `persistent|ephemeral,<MiB>,<storage class>`. */
export function workspaceText(workspace: {
  persistent: boolean;
  sizeMb: number;
  storageClass?: string | undefined;
}): string {
  return [workspace.persistent ? "persistent" : "ephemeral", workspace.sizeMb, workspace.storageClass ?? ""].join(",");
}

function workspaceOf(text: string | undefined): SessionRecord["workspace"] {
  const [kind, size, storageClass] = (text ?? "").split(",");
  const sizeMb = Number(size);
  if ((kind !== "persistent" && kind !== "ephemeral") || !Number.isInteger(sizeMb)) return DEFAULT_WORKSPACE;
  return { persistent: kind === "persistent", sizeMb, storageClass: storageClass || undefined };
}
