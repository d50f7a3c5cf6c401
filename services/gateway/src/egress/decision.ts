import { isIP } from "node:net";
import { egressAllows, type GatewayGrant } from "@sbx/protocol";
import { isPublicAddress, type PrivateAllowance, privatelyAllowed } from "./address-policy.js";

/** Why the gateway refused a destination (shown to the session as `details.rule`). */
export type DenyRule = "session-state" | "port" | "policy" | "private-address" | "unresolvable";

export type Verdict = { allowed: true; address: string } | { allowed: false; rule: DenyRule; message: string };

/** Resolves a name to every address it has (the gateway connects to one it checked, never re-resolving). */
export type Resolver = (host: string) => Promise<string[]>;

/**
 * Whether a session may reach `host:port`, and at which address: its policy first (the name and
 * port), then every address the name resolves to — a private one only where the deployment names
 * it. The connection then goes to the checked address itself, so no later answer of the resolver
 * (DNS rebinding) can send it elsewhere.
 */
export async function decide(
  grant: GatewayGrant,
  rawHost: string,
  port: number,
  resolve: Resolver,
  allowance: PrivateAllowance,
): Promise<Verdict> {
  const host = normalizeHost(rawHost);
  const where = `${host}:${port}`;
  if (grant.state !== "running") {
    return {
      allowed: false,
      rule: "session-state",
      message: `the session is ${grant.state}: its traffic is suspended`,
    };
  }
  // The host first (a session that may reach nothing is told so, whatever the port), then the port.
  if (!egressAllows({ ...grant.egress, ports: [port] }, host, port)) {
    return {
      allowed: false,
      rule: "policy",
      message: `${where}: the session's egress policy (${grant.egress.egress}) does not allow this host`,
    };
  }
  if (!egressAllows(grant.egress, host, port)) {
    return { allowed: false, rule: "port", message: `${where}: port ${port} is not among the session's egress ports` };
  }
  let addresses: string[];
  try {
    addresses = isIP(host) ? [host] : await resolve(host);
  } catch {
    addresses = [];
  }
  if (addresses.length === 0)
    return { allowed: false, rule: "unresolvable", message: `${where}: the name does not resolve` };
  const usable = addresses.filter((a) => isPublicAddress(a) || privatelyAllowed(allowance, host, port, a));
  const address = usable.find((a) => isIP(a) === 4) ?? usable[0];
  if (address === undefined) {
    return {
      allowed: false,
      rule: "private-address",
      message: `${where} resolves to ${addresses[0]}, a private address the gateway never connects to`,
    };
  }
  return { allowed: true, address };
}

/** A host as policies name it: lower-case, no IPv6 brackets, no trailing dot. */
export function normalizeHost(host: string): string {
  return host
    .toLowerCase()
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/\.$/, "");
}
