import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";

const TOKEN = "a".repeat(64);

describe("loadConfig", () => {
  it("applies the documented defaults", () => {
    const config = loadConfig({ RUNNERD_TOKEN_SHA256: TOKEN });
    expect(config).toMatchObject({
      host: "0.0.0.0",
      port: 7070,
      root: "/workspace",
      ringBytes: 4 * 1024 * 1024,
      orphanTimeoutMs: 600_000,
      maxExecs: 64,
      heartbeatMs: 15_000,
    });
  });

  it("names every invalid variable and never echoes its value", () => {
    expect(() => loadConfig({})).toThrow(/RUNNERD_TOKEN_SHA256 is required/);
    let message = "";
    try {
      loadConfig({ RUNNERD_TOKEN_SHA256: "my-actual-token", RUNNERD_PORT: "99999", RUNNERD_ROOT: "relative" });
    } catch (error) {
      message = error instanceof Error ? error.message : "";
    }
    expect(message).toMatch(/RUNNERD_TOKEN_SHA256/);
    expect(message).toMatch(/RUNNERD_PORT/);
    expect(message).toMatch(/RUNNERD_ROOT/);
    expect(message).not.toContain("my-actual-token");
  });

  it("parses lists and lower-cases the digest", () => {
    const config = loadConfig({
      RUNNERD_TOKEN_SHA256: "A".repeat(64),
      RUNNERD_EXEC_PASSTHROUGH_ENV: "TERM, COLORTERM,",
    });
    expect(config.tokenSha256).toBe(TOKEN);
    expect(config.execPassthroughEnv).toEqual(["TERM", "COLORTERM"]);
  });
});
