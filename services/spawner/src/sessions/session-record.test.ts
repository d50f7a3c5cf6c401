import { ANNOTATIONS, isLabelValue, LABELS } from "@sbx/protocol";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../config.js";
import { metaOf, recordFromMeta, type SessionRecord } from "./session-record.js";
import { resolveSpec } from "./session-spec.js";

const config = loadConfig({
  SPAWNER_HMAC_KEYS: "k:0123456789abcdef0123",
  SPAWNER_RUNNERD_SECRET: "r".repeat(40),
  SPAWNER_IMAGES: `sbx-runtime:latest,${"registry.example.com:5000/team/".padEnd(200, "x")}:v1.2.3`,
});
const NOW = 1_800_000_000_000;

/** A record with every field at the limit the API allows. */
function recordAtTheLimits(): SessionRecord {
  const labels: Record<string, string> = {};
  for (let i = 0; i < 32; i++)
    labels[`k${String(i).padStart(2, "0")}.${"a".repeat(58)}`] = `V${"v".repeat(61)}${i % 10}`;
  const image = config.profiles.get("default")?.images[1] ?? "";
  return resolveSpec(
    {
      id: `a${"b".repeat(61)}c`,
      org: `O${"r.g_-".repeat(12)}9`.padEnd(63, "z"),
      owner: `o${"w".repeat(60)}@example.com+tag.${"x".repeat(50)}`,
      image,
      labels,
      resources: { cpus: 0.05, memoryMb: 8192, pids: 8192 },
      ttlMs: 24 * 3_600_000,
      idleTimeoutMs: 1000,
    },
    config,
    NOW,
  ).record;
}

describe("the two layers of a session's truth", () => {
  it("round-trip a record with every field at its limit", () => {
    const record = recordAtTheLimits();
    expect(record.id).toHaveLength(63);
    expect(record.org).toHaveLength(63);
    expect(record.owner).toHaveLength(128);
    expect(record.image.length).toBeGreaterThan(200);
    expect(recordFromMeta(metaOf(record))).toEqual(record);
  });

  it("keep only short selector values in labels, everything else in annotations", () => {
    const meta = metaOf(recordAtTheLimits());
    expect(Object.keys(meta.labels).sort()).toEqual([LABELS.org, LABELS.sessionId].sort());
    for (const value of Object.values(meta.labels)) {
      expect(isLabelValue(value)).toBe(true);
      expect(value.length).toBeLessThanOrEqual(63);
    }
    // What a Kubernetes label could not hold lives in annotations.
    expect(meta.annotations[ANNOTATIONS.specDigest]).toMatch(/^[0-9a-f]{64}$/);
    expect(meta.annotations[ANNOTATIONS.image]).toContain("/");
    expect(meta.annotations[ANNOTATIONS.owner]).toContain("@");
  });

  it("use annotation keys a Kubernetes API server accepts (prefix/name, name at most 63)", () => {
    const meta = metaOf(recordAtTheLimits());
    for (const key of [...Object.keys(meta.labels), ...Object.keys(meta.annotations)]) {
      const [prefix, name, ...rest] = key.split("/");
      expect(rest).toEqual([]);
      expect(prefix).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/);
      expect(name).toMatch(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/);
    }
  });

  it("refuse to guess a session from incomplete annotations", () => {
    const meta = metaOf(recordAtTheLimits());
    delete meta.annotations[ANNOTATIONS.expiresAt];
    expect(recordFromMeta(meta)).toBeUndefined();
    const noId = metaOf(recordAtTheLimits());
    delete noId.labels[LABELS.sessionId];
    expect(recordFromMeta(noId)).toBeUndefined();
  });

  it("refuse a label value no backend could hold", () => {
    const record = { ...recordAtTheLimits(), org: "has space" };
    expect(() => metaOf(record)).toThrow(/cannot hold/);
  });
});
