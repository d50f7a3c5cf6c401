import { expect } from "vitest";
import { dockerUnavailable, inspect, leftovers, removeDeployment } from "../support/docker.js";
import { runLifecycleSuite } from "../support/lifecycle-suite.js";
import { startSpawner } from "../support/spawner.js";

const skip = await dockerUnavailable();
if (skip) console.warn(`SKIPPING spawner lifecycle tests on Docker: ${skip}`);

runLifecycleSuite({
  backend: "docker",
  skip,
  start: () => startSpawner(),
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
    // runnerd's port is published on loopback only.
    for (const binding of Object.values(info.HostConfig.PortBindings ?? {}).flat())
      expect(binding.HostIp).toBe("127.0.0.1");
    return JSON.stringify(info);
  },
  async leftovers(deployment) {
    const left = await leftovers(deployment);
    return [...left.containers, ...left.volumes];
  },
  cleanup: removeDeployment,
});
