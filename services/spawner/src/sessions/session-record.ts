import { LABELS } from "@sbx/protocol";

/** A session's durable facts, exactly what its backend object's labels carry. */
export interface SessionRecord {
  id: string;
  org: string;
  owner: string | null;
  profile: string;
  image: string;
  createdAt: number;
  /** As created; a later PATCH lives in runnerd's lease. */
  expiresAt: number;
  idleTimeoutMs: number;
  resources: { cpus: number; memoryMb: number; pids: number };
  /** The caller's own labels. */
  labels: Record<string, string>;
  specDigest: string;
}

export function labelsOf(record: SessionRecord): Record<string, string> {
  const labels: Record<string, string> = {
    [LABELS.sessionId]: record.id,
    [LABELS.org]: record.org,
    [LABELS.profile]: record.profile,
    [LABELS.image]: record.image,
    [LABELS.createdAt]: String(record.createdAt),
    [LABELS.expiresAt]: String(record.expiresAt),
    [LABELS.idleTimeoutMs]: String(record.idleTimeoutMs),
    [LABELS.cpus]: String(record.resources.cpus),
    [LABELS.memoryMb]: String(record.resources.memoryMb),
    [LABELS.pids]: String(record.resources.pids),
    [LABELS.specDigest]: record.specDigest,
  };
  if (record.owner !== null) labels[LABELS.owner] = record.owner;
  for (const [key, value] of Object.entries(record.labels)) labels[`${LABELS.userPrefix}${key}`] = value;
  return labels;
}

/** Rebuilds a record from labels; undefined when they are not a complete sbx session (never guessed). */
export function recordFromLabels(labels: Readonly<Record<string, string>>): SessionRecord | undefined {
  const text = (key: string) => labels[key];
  const number = (key: string) => {
    const value = labels[key];
    const parsed = value === undefined ? Number.NaN : Number(value);
    return Number.isFinite(parsed) ? parsed : undefined;
  };
  const id = text(LABELS.sessionId);
  const org = text(LABELS.org);
  const profile = text(LABELS.profile);
  const image = text(LABELS.image);
  const specDigest = text(LABELS.specDigest);
  const createdAt = number(LABELS.createdAt);
  const expiresAt = number(LABELS.expiresAt);
  const idleTimeoutMs = number(LABELS.idleTimeoutMs);
  const cpus = number(LABELS.cpus);
  const memoryMb = number(LABELS.memoryMb);
  const pids = number(LABELS.pids);
  if (
    id === undefined ||
    org === undefined ||
    profile === undefined ||
    image === undefined ||
    specDigest === undefined ||
    createdAt === undefined ||
    expiresAt === undefined ||
    idleTimeoutMs === undefined ||
    cpus === undefined ||
    memoryMb === undefined ||
    pids === undefined
  ) {
    return undefined;
  }
  const userLabels: Record<string, string> = {};
  for (const [key, value] of Object.entries(labels)) {
    if (key.startsWith(LABELS.userPrefix)) userLabels[key.slice(LABELS.userPrefix.length)] = value;
  }
  return {
    id,
    org,
    owner: text(LABELS.owner) ?? null,
    profile,
    image,
    createdAt,
    expiresAt,
    idleTimeoutMs,
    resources: { cpus, memoryMb, pids },
    labels: userLabels,
    specDigest,
  };
}
