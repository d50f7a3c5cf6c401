import type { GatewayGrant } from "@sbx/protocol";
import { describe, expect, it } from "vitest";
import { isPublicAddress, parsePrivateAllowance } from "./address-policy.js";
import { decide, type Resolver } from "./decision.js";

const grant = (egress: GatewayGrant["egress"], state: GatewayGrant["state"] = "running"): GatewayGrant => ({
  sessionId: "s1",
  state,
  address: "10.0.0.2",
  egress,
});
const allowlist = grant({ egress: "allowlist", allow: ["example.com", "*.npmjs.org"], ports: [80, 443] });
const open = grant({ egress: "open", allow: [], ports: [443] });
const none = parsePrivateAllowance("");
const resolving =
  (answers: Record<string, string[]>): Resolver =>
  async (host) =>
    answers[host] ?? [];

describe("what a session may reach", () => {
  it("follows the policy by name and port, and the session's state", async () => {
    const resolve = resolving({ "example.com": ["93.184.216.34"], "registry.npmjs.org": ["104.16.1.1"] });
    expect(await decide(allowlist, "example.com", 443, resolve, none)).toEqual({
      allowed: true,
      address: "93.184.216.34",
    });
    expect(await decide(allowlist, "registry.npmjs.org", 443, resolve, none)).toMatchObject({ allowed: true });
    expect(await decide(allowlist, "npmjs.org", 443, resolve, none)).toMatchObject({ allowed: false, rule: "policy" });
    expect(await decide(allowlist, "evil.example", 443, resolve, none)).toMatchObject({
      allowed: false,
      rule: "policy",
    });
    expect(await decide(allowlist, "example.com", 22, resolve, none)).toMatchObject({ allowed: false, rule: "port" });
    expect(await decide(grant(allowlist.egress, "stopped"), "example.com", 443, resolve, none)).toMatchObject({
      allowed: false,
      rule: "session-state",
    });
    expect(
      await decide(grant({ egress: "deny", allow: [], ports: [443] }), "example.com", 443, resolve, none),
    ).toMatchObject({ allowed: false, rule: "policy" });
  });

  it("never connects to a private address, by literal or by name, unless the deployment names it", async () => {
    const resolve = resolving({
      "inside.test": ["10.1.2.3"],
      "sneaky.test": ["93.184.216.34", "127.0.0.1"],
      localhost: ["127.0.0.1", "::1"],
    });
    for (const host of [
      "127.0.0.1",
      "169.254.169.254",
      "10.0.0.5",
      "192.168.1.1",
      "100.64.0.1",
      "[::1]",
      "[fd00::1]",
      "[fe80::1]",
      "[::ffff:127.0.0.1]",
      "localhost",
      "inside.test",
    ]) {
      expect(await decide(open, host, 443, resolve, none), host).toMatchObject({
        allowed: false,
        rule: "private-address",
      });
    }
    // A name with a public and a private answer is connected only to the public one.
    expect(await decide(open, "sneaky.test", 443, resolve, none)).toEqual({ allowed: true, address: "93.184.216.34" });
    expect(await decide(open, "inside.test", 443, resolve, parsePrivateAllowance("inside.test:443"))).toEqual({
      allowed: true,
      address: "10.1.2.3",
    });
    expect(await decide(open, "inside.test", 443, resolve, parsePrivateAllowance("10.1.0.0/16"))).toMatchObject({
      allowed: true,
    });
    // Named for another port, or outside the range: still refused.
    expect(await decide(open, "inside.test", 443, resolve, parsePrivateAllowance("inside.test:80"))).toMatchObject({
      allowed: false,
    });
    expect(await decide(open, "inside.test", 443, resolve, parsePrivateAllowance("10.2.0.0/16"))).toMatchObject({
      allowed: false,
    });
    // A private host the deployment allows is still the session's policy's to allow.
    expect(
      await decide(allowlist, "inside.test", 443, resolve, parsePrivateAllowance("inside.test:443")),
    ).toMatchObject({
      allowed: false,
      rule: "policy",
    });
  });

  it("refuses what does not resolve", async () => {
    expect(await decide(open, "nowhere.test", 443, resolving({}), none)).toMatchObject({
      allowed: false,
      rule: "unresolvable",
    });
  });

  it("tells public addresses from every kind of private one", () => {
    for (const address of ["8.8.8.8", "2606:4700:4700::1111"]) expect(isPublicAddress(address), address).toBe(true);
    for (const address of [
      "127.0.0.1",
      "10.0.0.1",
      "172.16.5.4",
      "192.168.0.1",
      "100.64.1.1",
      "169.254.169.254",
      "0.0.0.0",
      "255.255.255.255",
      "224.0.0.1",
      "::1",
      "fc00::1",
      "fe80::1",
      "::",
      "::ffff:10.0.0.1",
      "not-an-address",
    ]) {
      expect(isPublicAddress(address), address).toBe(false);
    }
  });
});
