import ipaddr from "ipaddr.js";

/** Private destinations a deployment still allows (see GATEWAY_ALLOW_PRIVATE). */
export interface PrivateAllowance {
  /** `host:port` exactly as a session names it (lower-case). */
  hostPorts: ReadonlySet<string>;
  cidrs: ReadonlyArray<[ipaddr.IPv4 | ipaddr.IPv6, number]>;
}

export function parsePrivateAllowance(text: string): PrivateAllowance {
  const hostPorts = new Set<string>();
  const cidrs: Array<[ipaddr.IPv4 | ipaddr.IPv6, number]> = [];
  for (const entry of text
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "")) {
    if (entry.includes("/")) {
      try {
        cidrs.push(ipaddr.parseCIDR(entry));
      } catch {
        throw new Error(`${JSON.stringify(entry)} is not a CIDR`);
      }
      continue;
    }
    const match = /^(.+):(\d{1,5})$/.exec(entry);
    if (!match || Number(match[2]) < 1 || Number(match[2]) > 65_535) {
      throw new Error(`${JSON.stringify(entry)} is neither host:port nor a CIDR`);
    }
    hostPorts.add(entry);
  }
  return { hostPorts, cidrs };
}

/**
 * Whether an address is an ordinary public one. Everything else — loopback, RFC 1918, CGNAT,
 * link-local (the cloud metadata service), IPv6 unique-local and link-local, multicast,
 * unspecified, reserved, and IPv4 written as IPv6 of any of these — is private to the gateway.
 */
export function isPublicAddress(address: string): boolean {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.process(address);
  } catch {
    return false;
  }
  return parsed.range() === "unicast";
}

/** Whether a private destination is one the deployment allows: its `host:port`, or its address in a CIDR. */
export function privatelyAllowed(allowance: PrivateAllowance, host: string, port: number, address: string): boolean {
  if (allowance.hostPorts.has(`${host}:${port}`)) return true;
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    parsed = ipaddr.process(address);
  } catch {
    return false;
  }
  return allowance.cidrs.some(([range, bits]) => parsed.kind() === range.kind() && parsed.match(range, bits));
}
