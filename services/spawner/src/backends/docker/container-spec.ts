import type Docker from "dockerode";
import type { BackendSessionSpec, Endpoint } from "../backend.js";
import {
  HOME_PATH,
  memoryBudget,
  RUNNERD_PORT,
  SESSION_GID,
  SESSION_UID,
  WORKSPACE_PATH,
} from "../runtime-contract.js";

const MiB = 1024 * 1024;

/** How the deployment's session containers are networked and stopped. */
export interface ContainerSettings {
  network: string;
  /**
   * `address`: the container's IP, routed by the host (the spawner runs on the host or in its
   * network namespace); `published`: a port published on 127.0.0.1, where the host cannot route
   * to container addresses.
   */
  access: "address" | "published";
  /** How long a stopped or removed session's processes get between SIGTERM and SIGKILL. */
  stopTimeoutSeconds: number;
}

/**
 * A session's container: runnerd's environment only, the unprivileged user, every capability
 * dropped, no-new-privileges, a read-only root with tmpfs scratch sized inside the memory limit,
 * memory (no swap), CPU and pids limits, the workspace volume, never restarted.
 */
export function containerOptions(
  spec: BackendSessionSpec,
  name: string,
  volume: string,
  labels: Record<string, string>,
  settings: ContainerSettings,
): Docker.ContainerCreateOptions {
  const scratch = memoryBudget(spec.resources.memoryMb).tmpfsMb;
  return {
    name,
    Image: spec.image,
    Labels: labels,
    Env: Object.entries(spec.runnerdEnv).map(([k, v]) => `${k}=${v}`),
    User: `${SESSION_UID}:${SESSION_GID}`,
    WorkingDir: WORKSPACE_PATH,
    ExposedPorts: { [`${RUNNERD_PORT}/tcp`]: {} },
    StopTimeout: settings.stopTimeoutSeconds,
    HostConfig: {
      NetworkMode: settings.network,
      ...(settings.access === "published"
        ? { PortBindings: { [`${RUNNERD_PORT}/tcp`]: [{ HostIp: "127.0.0.1", HostPort: "" }] } }
        : {}),
      Mounts: [{ Type: "volume", Source: volume, Target: WORKSPACE_PATH }],
      Tmpfs: {
        // Sized inside the memory limit, which tmpfs pages count against: full is ENOSPC, not an OOM kill.
        "/tmp": `rw,nosuid,nodev,size=${scratch.tmp}m,mode=1777`,
        [HOME_PATH]: `rw,nosuid,nodev,size=${scratch.home}m,uid=${SESSION_UID},gid=${SESSION_GID},mode=0755`,
      },
      ReadonlyRootfs: true,
      CapDrop: ["ALL"],
      SecurityOpt: ["no-new-privileges"],
      Memory: spec.resources.memoryMb * MiB,
      MemorySwap: spec.resources.memoryMb * MiB,
      NanoCpus: Math.round(spec.resources.cpus * 1e9),
      PidsLimit: spec.resources.pids,
      RestartPolicy: { Name: "no" },
      LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "2" } },
    },
  };
}

/** Where runnerd answers, from a container's inspected network settings; undefined until it has an address. */
export function endpointOf(
  networkSettings: {
    Networks?: Record<string, { IPAddress?: string }>;
    Ports?: Record<string, Array<{ HostIp?: string; HostPort?: string }> | null>;
  },
  settings: Pick<ContainerSettings, "network" | "access">,
): Endpoint | undefined {
  if (settings.access === "address") {
    const ip = networkSettings.Networks?.[settings.network]?.IPAddress;
    return ip ? { host: ip, port: RUNNERD_PORT } : undefined;
  }
  const binding = networkSettings.Ports?.[`${RUNNERD_PORT}/tcp`]?.[0];
  const port = Number(binding?.HostPort);
  return port > 0 ? { host: "127.0.0.1", port } : undefined;
}
