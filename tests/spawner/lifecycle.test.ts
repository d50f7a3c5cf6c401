import { SessionResponseSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerUnavailable, expectRunnerdExposure, inspect, leftovers, removeDeployment } from "../support/docker.js";
import { runLifecycleSuite } from "../support/lifecycle-suite.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";
import { type SpawnerHandle, startSpawner } from "../support/spawner.js";

const skip = skipUnlessPlatform("Docker", await dockerUnavailable(), "spawner lifecycle tests on Docker");

runLifecycleSuite({
  backend: "docker",
  skip,
  // Said, not left to the default: what the container must show depends on it.
  start: () => startSpawner({ env: { SPAWNER_RUNNERD_ACCESS: "address" } }),
  async inspectLockdown(spawner, id) {
    const info = await inspect(`sbx-${spawner.deployment}-${id}`);
    expect(info.Config.User).toBe("10001:10001");
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    expect(info.HostConfig.CapDrop).toEqual(["ALL"]);
    expect(info.HostConfig.SecurityOpt).toContain("no-new-privileges");
    expect(info.HostConfig.Privileged).toBe(false);
    expect(info.HostConfig.Memory).toBe(256 * 1024 * 1024);
    expect(info.HostConfig.NanoCpus).toBe(500_000_000);
    expect(info.HostConfig.PidsLimit).toBe(200);
    expect(Object.keys(info.HostConfig.Tmpfs ?? {})).toContain("/tmp");
    expect(info.Mounts).toEqual([expect.objectContaining({ Type: "volume", Destination: "/workspace" })]);
    // Reached by address: nothing is published on the host, and runnerd answers at the container's IP.
    const runnerd = expectRunnerdExposure(info, "address", `sbx-${spawner.deployment}`);
    expect(await runnerdHealth(runnerd)).toEqual({ status: "ok" });
    return JSON.stringify(info);
  },
  async leftovers(deployment) {
    const left = await leftovers(deployment);
    return [...left.containers, ...left.volumes];
  },
  cleanup: removeDeployment,
});

describe("runnerd's port with SPAWNER_RUNNERD_ACCESS=published", skippedBecause(skip), () => {
  let spawner: SpawnerHandle;

  beforeAll(async () => {
    spawner = await startSpawner({ env: { SPAWNER_RUNNERD_ACCESS: "published" } });
  });
  afterAll(async () => {
    await spawner?.stop();
    if (spawner) await removeDeployment(spawner.deployment);
  });

  it("is published on 127.0.0.1 only, where runnerd answers", async () => {
    const created = await spawner.json("POST", "/v1/sessions", { id: "pub", org: "acme" });
    expect(created.status).toBe(201);
    expect(SessionResponseSchema.parse(created.body).session.state).toBe("ready");
    const info = await inspect(`sbx-${spawner.deployment}-pub`);
    const runnerd = expectRunnerdExposure(info, "published", `sbx-${spawner.deployment}`);
    expect(await runnerdHealth(runnerd)).toEqual({ status: "ok" });
    expect((await spawner.request("DELETE", "/v1/sessions/pub")).status).toBe(204);
  });
});

/** runnerd's unauthenticated health answer, from the host, at the endpoint the access mode gives. */
async function runnerdHealth(endpoint: { host: string; port: number }): Promise<unknown> {
  const response = await fetch(`http://${endpoint.host}:${endpoint.port}/healthz`, {
    signal: AbortSignal.timeout(5000),
  });
  return response.json();
}
