import { describe, expect, it } from "vitest";
import { loadConfig } from "../config.js";
import { resolveSpec } from "./session-spec.js";

const config = loadConfig({
  SPAWNER_HMAC_KEYS: "k:0123456789abcdef0123",
  SPAWNER_RUNNERD_SECRET: "r".repeat(40),
  SPAWNER_IMAGES: "sbx-runtime:latest,sbx-runtime:next",
  SPAWNER_PROFILES: JSON.stringify({ big: { images: ["sbx-big:1"] } }),
});
const NOW = 1_800_000_000_000;

describe("resolveSpec", () => {
  it("applies profile, image, resource and lifetime defaults", () => {
    const { record } = resolveSpec({ org: "acme" }, config, NOW);
    expect(record).toMatchObject({
      org: "acme",
      owner: null,
      profile: "default",
      image: "sbx-runtime:latest",
      createdAt: NOW,
      expiresAt: NOW + 3_600_000,
      idleTimeoutMs: 1_800_000,
      resources: { cpus: 1, memoryMb: 1024, pids: 1024 },
    });
    expect(record.id).toMatch(/^s-[a-z0-9]{12}$/);
    expect(resolveSpec({ org: "acme" }, config, NOW).record.id).not.toBe(record.id);
  });

  it("names a create without an id after its signed request: the same request, the same id, on any replica", () => {
    const requestId = "f".repeat(64);
    const id = resolveSpec({ org: "acme" }, config, NOW, requestId).record.id;
    expect(id).toMatch(/^s-[a-z0-9]{12}$/);
    expect(resolveSpec({ org: "acme" }, config, NOW + 1000, requestId).record.id).toBe(id);
    expect(resolveSpec({ org: "acme" }, config, NOW, "e".repeat(64)).record.id).not.toBe(id);
    expect(resolveSpec({ id: "mine", org: "acme" }, config, NOW, requestId).record.id).toBe("mine");
  });

  it("gives the same digest to the same request and a different one to any change, env included", () => {
    const base = { id: "x", org: "acme", env: { A: "1" }, labels: { t: "v" } };
    const digest = (r: Parameters<typeof resolveSpec>[0]) => resolveSpec(r, config, NOW).record.specDigest;
    expect(digest(base)).toBe(digest({ ...base }));
    expect(digest(base)).toBe(resolveSpec(base, config, NOW + 5000).record.specDigest);
    expect(digest({ ...base, env: { A: "2" } })).not.toBe(digest(base));
    expect(digest({ ...base, labels: { t: "w" } })).not.toBe(digest(base));
    expect(digest({ ...base, ttlMs: 5000 })).not.toBe(digest(base));
    // The digest is keyed: it does not reveal env values to whoever reads labels.
    expect(digest(base)).toMatch(/^[0-9a-f]{64}$/);
  });

  it("refuses what is off the allow-list or above the maxima", () => {
    expect(() => resolveSpec({ org: "a", image: "sbx-big:1" }, config, NOW)).toThrow(
      expect.objectContaining({ code: "IMAGE_NOT_ALLOWED" }),
    );
    expect(() => resolveSpec({ org: "a", profile: "big" }, config, NOW)).not.toThrow();
    expect(() => resolveSpec({ org: "a", profile: "gpu" }, config, NOW)).toThrow(
      expect.objectContaining({ code: "PROFILE_NOT_FOUND" }),
    );
    expect(() => resolveSpec({ org: "a", resources: { cpus: 64 } }, config, NOW)).toThrow(
      expect.objectContaining({ code: "VALIDATION_FAILED" }),
    );
    expect(() => resolveSpec({ org: "a", ttlMs: 48 * 3_600_000 }, config, NOW)).toThrow(
      expect.objectContaining({ code: "VALIDATION_FAILED" }),
    );
    expect(() => resolveSpec({ org: "a", env: { SBX_EXEC: "x" } }, config, NOW)).toThrow(
      expect.objectContaining({ code: "VALIDATION_FAILED" }),
    );
  });
});
