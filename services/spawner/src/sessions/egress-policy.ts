import {
  ApiError,
  DEFAULT_EGRESS_PORTS,
  type EgressPolicy,
  type EgressRequest,
  egressRank,
  matchesHostPattern,
} from "@sbx/protocol";
import type { Config } from "../config.js";

/**
 * The egress policy a session gets: what it asked for (or the deployment's default), never more
 * than the deployment's ceiling — a mode no more open than `SPAWNER_EGRESS_MAX`, hosts within
 * `SPAWNER_EGRESS_HOSTS`, ports within `SPAWNER_EGRESS_PORTS` where they are set.
 */
export function resolveEgress(requested: EgressRequest | undefined, config: Config): EgressPolicy {
  const ceiling = config.egress;
  const policy: EgressPolicy = requested
    ? {
        egress: requested.egress,
        allow: requested.egress === "allowlist" ? [...new Set(requested.allow ?? [])].sort() : [],
        ports: [...new Set(requested.ports ?? DEFAULT_EGRESS_PORTS)].sort((a, b) => a - b),
      }
    : ceiling.default;
  if (egressRank(policy.egress) > egressRank(ceiling.max)) {
    throw refused(`this deployment allows at most "${ceiling.max}" egress`, "network.egress");
  }
  if (policy.egress === "open" && ceiling.hosts !== undefined) {
    throw refused("this deployment limits egress to named hosts: ask for an allowlist", "network.egress");
  }
  const hosts = ceiling.hosts;
  if (hosts !== undefined) {
    const outside = policy.allow.filter((pattern) => !hosts.some((allowed) => covers(allowed, pattern)));
    if (outside.length > 0)
      throw refused(`hosts outside what this deployment allows: ${outside.join(", ")}`, "network.allow");
  }
  const ports = ceiling.ports;
  if (ports !== undefined) {
    const outside = policy.ports.filter((port) => !ports.includes(port));
    if (outside.length > 0)
      throw refused(`ports this deployment does not allow: ${outside.join(", ")}`, "network.ports");
  }
  return policy;
}

/** Whether every host `pattern` matches is one `allowed` matches too. */
function covers(allowed: string, pattern: string): boolean {
  if (!pattern.startsWith("*.")) return matchesHostPattern(allowed, pattern);
  return allowed === pattern || (allowed.startsWith("*.") && pattern.endsWith(allowed.slice(1)));
}

function refused(message: string, path: string): ApiError {
  return new ApiError("EGRESS_NOT_ALLOWED", message, { details: { issues: [{ path, message }] } });
}
