import type { Logger } from "@sbx/edge";
import { BackendUnavailableError } from "../backend-errors.js";
import type { ContainerSettings } from "./container-spec.js";
import { type DockerEngine, dockerUnavailable, statusOf } from "./docker-engine.js";

/**
 * Makes (or checks) the deployment's sessions' bridge: inter-container traffic off, internal
 * where runnerd is reached by address, on the configured subnet if any. Returns the bridge's own
 * address (the host, as sessions reach it) where Docker says it.
 */
export async function ensureSessionNetwork(
  engine: DockerEngine,
  options: Pick<ContainerSettings, "network" | "access"> & { subnet: string | undefined },
  log: Logger,
): Promise<string | undefined> {
  const { network } = options;
  // Internal (no route out through the host) where the spawner reaches runnerd by address; a
  // published port needs a routed network. Either way each session's own rules allow only the
  // gateway (egress-guard.ts), and no session reaches another (inter-container traffic off).
  const internal = options.access === "address";
  const existing = await engine.call("list networks", () =>
    engine.docker.listNetworks({ filters: { name: [network] } }),
  );
  let found = existing.find((n) => n.Name === network);
  if (found) {
    // A network made by an older version, or by hand, may let sessions talk to each other, or out.
    const isolated = found.Options?.["com.docker.network.bridge.enable_icc"] === "false";
    if (!isolated || found.Internal !== internal) {
      throw new BackendUnavailableError(
        `network ${network} is not the isolated${internal ? ", internal" : ""} bridge sessions need. Remove it (docker network rm ${network}, after its containers) and the spawner makes it anew`,
      );
    }
  } else {
    try {
      await engine.docker.createNetwork({
        Name: network,
        Driver: "bridge",
        CheckDuplicate: true,
        Internal: internal,
        ...(options.subnet
          ? {
              IPAM: {
                Driver: "default",
                Config: [{ Subnet: options.subnet, Gateway: firstHost(options.subnet) }],
              },
            }
          : {}),
        Labels: engine.ownership(),
        // No session may reach another: the spawner reaches each runnerd from the host (by
        // address, or through a port published on 127.0.0.1), never across the bridge.
        Options: { "com.docker.network.bridge.enable_icc": "false" },
      });
      log.info({ network, internal }, "created session network");
    } catch (error) {
      if (statusOf(error) !== 409) throw dockerUnavailable("could not create the session network", error);
    }
    found = (
      await engine.call("inspect the session network", () =>
        engine.docker.listNetworks({ filters: { name: [network] } }),
      )
    ).find((n) => n.Name === network);
  }
  return found?.IPAM?.Config?.find((c) => c.Gateway)?.Gateway;
}

/** The first host address of an IPv4 subnet (`172.30.99.0/24` → `172.30.99.1`): a bridge's own address. */
function firstHost(subnet: string): string {
  const [base = "", bits = "32"] = subnet.split("/");
  const value = base.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
  const mask = Number(bits) === 0 ? 0 : (0xffffffff << (32 - Number(bits))) >>> 0;
  const first = ((value & mask) >>> 0) + 1;
  return [24, 16, 8, 0].map((shift) => (first >>> shift) & 255).join(".");
}
