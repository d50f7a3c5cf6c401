import { describe, expect, it } from "vitest";
import { loadConfig, usesPublishedSecrets } from "./config.js";

const minimal = { SPAWNER_HMAC_KEYS: "k:0123456789abcdef0123", SPAWNER_RUNNERD_SECRET: "r".repeat(40) };

describe("spawner configuration", () => {
  it("takes several signing keys at once", () => {
    const config = loadConfig({ ...minimal, SPAWNER_HMAC_KEYS: "old:0123456789abcdef0123,new:fedcba98765432100123" });
    expect([...config.hmacKeys.keys()]).toEqual(["old", "new"]);
  });

  it("requires signing keys unless the development switch is on, and that only on loopback", () => {
    expect(() => loadConfig({ SPAWNER_RUNNERD_SECRET: "r".repeat(40) })).toThrow(/SPAWNER_HMAC_KEYS is required/);
    expect(loadConfig({ SPAWNER_RUNNERD_SECRET: "r".repeat(40), SPAWNER_DEV_INSECURE: "1" }).devInsecure).toBe(true);
    expect(() =>
      loadConfig({ SPAWNER_RUNNERD_SECRET: "r".repeat(40), SPAWNER_DEV_INSECURE: "1", SPAWNER_HOST: "0.0.0.0" }),
    ).toThrow(/SPAWNER_DEV_INSECURE is only allowed with SPAWNER_HOST on loopback/);
  });

  it("names bad variables without echoing secrets", () => {
    let message = "";
    try {
      loadConfig({ SPAWNER_HMAC_KEYS: "k:short-secret", SPAWNER_RUNNERD_SECRET: "tiny", SPAWNER_PORT: "http" });
    } catch (error) {
      message = error instanceof Error ? error.message : "";
    }
    expect(message).toMatch(/SPAWNER_HMAC_KEYS/);
    expect(message).toMatch(/SPAWNER_RUNNERD_SECRET/);
    expect(message).toMatch(/SPAWNER_PORT/);
    expect(message).not.toContain("short-secret");
    expect(message).not.toContain("tiny");
  });

  it("notices the published development secrets", () => {
    expect(usesPublishedSecrets(loadConfig(minimal))).toBe(false);
    expect(
      usesPublishedSecrets(loadConfig({ ...minimal, SPAWNER_HMAC_KEYS: "default:sbx-dev-secret-0123456789abcdef" })),
    ).toBe(true);
  });
});
