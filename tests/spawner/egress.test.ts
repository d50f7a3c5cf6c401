import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { networkInterfaces, tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { ErrorEnvelopeSchema, ExecResultSchema, SessionResponseSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { docker, dockerUnavailable, removeDeployment } from "../support/docker.js";
import { freePort, type GatewayHandle, gatewaySecret, startGateway } from "../support/gateway.js";
import { eventually } from "../support/proc.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";
import { type SpawnerHandle, startSpawner } from "../support/spawner.js";
import { BLOCKED, parseTcpReach, tcpProbeArgv } from "../support/tcp-probe.js";

const skip = skipUnlessPlatform("Docker", await dockerUnavailable(), "egress through the gateway on Docker");

const run$ = promisify(execFile);

/** A bare git repository with one commit (served as dumb HTTP), and an npm package tarball. */
async function makeFixtures(dir: string): Promise<void> {
  const work = path.join(dir, "work");
  await mkdir(work);
  await writeFile(path.join(work, "README"), "cloned through the gateway\n");
  const git = (...args: string[]) => run$("git", args, { cwd: work });
  await git("init", "-q");
  await git("add", "README");
  await git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one");
  await run$("git", ["clone", "-q", "--bare", work, path.join(dir, "repo.git")]);
  await run$("git", ["update-server-info"], { cwd: path.join(dir, "repo.git") });
  const pkg = path.join(dir, "tiny");
  await mkdir(pkg);
  await writeFile(path.join(pkg, "package.json"), JSON.stringify({ name: "tiny", version: "1.0.0", main: "index.js" }));
  await writeFile(path.join(pkg, "index.js"), 'module.exports = "installed through the gateway";\n');
  await run$("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: pkg });
}

/** This host's own address on its default network: private (the gateway refuses it unless named). */
function hostAddress(): string {
  for (const [name, addresses] of Object.entries(networkInterfaces())) {
    if (name === "lo" || name.startsWith("docker") || name.startsWith("br-") || name.startsWith("veth")) continue;
    const v4 = addresses?.find((a) => a.family === "IPv4" && !a.internal);
    if (v4) return v4.address;
  }
  throw new Error("this host has no address outside loopback and Docker");
}

describe("egress through the gateway (docker)", skippedBecause(skip), () => {
  let spawner: SpawnerHandle;
  let gateway: GatewayHandle;
  let upstream: Server;
  let upstreamPort: number;
  let otherPort: number;
  let other: Server;
  let files: string;
  const host = hostAddress();

  beforeAll(async () => {
    // The outside world: a web server on this host (a private address, which the deployment
    // names so that allowlisted sessions may reach it), and another one it does not name.
    // Static files too: a git repository (dumb HTTP) and an npm package, as a registry would serve them.
    files = await mkdtemp(path.join(tmpdir(), "sbx-egress-"));
    await makeFixtures(files);
    upstream = createServer((req, res) => {
      const pathname = new URL(req.url ?? "/", "http://upstream").pathname;
      if (pathname.startsWith("/static/")) {
        // Dumb HTTP for git: its query (?service=…) asks for the smart protocol, which this server does not speak.
        const file = path.join(files, path.normalize(decodeURIComponent(pathname.slice("/static/".length))));
        if (!file.startsWith(files)) return void res.writeHead(400).end();
        return void readFile(file).then(
          (bytes) => res.end(bytes),
          () => res.writeHead(404).end(),
        );
      }
      res.end(`upstream saw ${req.method} ${req.url}`);
    });
    await new Promise<void>((resolve) => upstream.listen(0, "0.0.0.0", resolve));
    const address = upstream.address();
    upstreamPort = typeof address === "object" && address ? address.port : 0;
    other = createServer((_req, res) => res.end("should never be reached"));
    await new Promise<void>((resolve) => other.listen(0, "0.0.0.0", resolve));
    const otherAddress = other.address();
    otherPort = typeof otherAddress === "object" && otherAddress ? otherAddress.port : 0;

    const secret = gatewaySecret();
    const gatewayPort = await freePort();
    spawner = await startSpawner({
      env: {
        SPAWNER_GATEWAY_SECRET: secret,
        SPAWNER_GATEWAY_PROXY_PORT: String(gatewayPort),
        SPAWNER_EGRESS_DEFAULT: JSON.stringify({ egress: "deny" }),
      },
    });
    gateway = await startGateway({
      port: gatewayPort,
      spawnerUrl: spawner.url,
      secret,
      env: { GATEWAY_ALLOW_PRIVATE: `${host}:${upstreamPort}`, GATEWAY_GRANT_TTL_MS: "500" },
    });
  });
  afterAll(async () => {
    await gateway?.stop();
    await spawner?.stop();
    if (spawner) await removeDeployment(spawner.deployment);
    upstream?.close();
    other?.close();
    if (files) await rm(files, { recursive: true, force: true });
  });

  const create = async (id: string, network?: unknown) => {
    const made = await spawner.json("POST", "/v1/sessions", { id, org: "egress", ...(network ? { network } : {}) });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    return SessionResponseSchema.parse(made.body).session;
  };
  const run = async (id: string, shell: string) => {
    const result = await spawner.json("POST", `/v1/sessions/${id}/execs?wait=true`, { shell });
    expect(result.status, JSON.stringify(result.body)).toBe(200);
    return ExecResultSchema.parse(result.body);
  };
  /** curl through the session's proxy settings: the HTTP status, and the body. */
  const curl = async (id: string, url: string, extra = "") => {
    const out = await run(id, `curl -s --noproxy '' -m 10 ${extra} -w '\\n%{http_code}' '${url}'`);
    const lines = out.stdout.split("\n");
    return { status: Number(lines.at(-1)), body: lines.slice(0, -1).join("\n") };
  };
  const probe = async (id: string, to: string, port: number) => {
    const result = await spawner.json("POST", `/v1/sessions/${id}/execs?wait=true`, { argv: tcpProbeArgv(to, port) });
    return parseTcpReach(ExecResultSchema.parse(result.body).stdout);
  };
  const upstreamUrl = () => `http://${host}:${upstreamPort}`;

  it("denies by default, naming the rule", async () => {
    const session = await create("closed");
    expect(session.network).toEqual({ egress: "deny", allow: [], ports: [80, 443] });
    const denied = await curl("closed", `${upstreamUrl()}/x`);
    expect(denied.status).toBe(403);
    expect(ErrorEnvelopeSchema.parse(JSON.parse(denied.body)).error).toMatchObject({
      code: "EGRESS_DENIED",
      details: { rule: "policy" },
    });
  });

  it("lets an allowlisted session reach its hosts by HTTP and by CONNECT, and nothing else", async () => {
    await create("listed", { egress: "allowlist", allow: [host], ports: [upstreamPort, otherPort] });
    const plain = await curl("listed", `${upstreamUrl()}/plain`);
    expect(plain).toEqual({ status: 200, body: "upstream saw GET /plain" });
    const tunnelled = await curl("listed", `${upstreamUrl()}/tunnel`, "--proxytunnel");
    expect(tunnelled).toEqual({ status: 200, body: "upstream saw GET /tunnel" });
    // Same host, a port the deployment does not name privately: a private address, refused.
    const unnamed = await curl("listed", `http://${host}:${otherPort}/`);
    expect(unnamed.status).toBe(403);
    expect(JSON.parse(unnamed.body)).toMatchObject({ error: { details: { rule: "private-address" } } });
    // A host the policy does not list.
    const unlisted = await curl("listed", `http://example.invalid:${upstreamPort}/`);
    expect(JSON.parse(unlisted.body)).toMatchObject({ error: { code: "EGRESS_DENIED", details: { rule: "policy" } } });
    // Node's fetch follows the same proxy settings.
    const fetched = await run(
      "listed",
      `node -e "fetch('${upstreamUrl()}/node').then(r => r.text()).then(console.log)"`,
    );
    expect(fetched.stdout.trim()).toBe("upstream saw GET /node");
  });

  it("lets git and npm work unchanged through the proxy settings", async () => {
    await create("tools", { egress: "allowlist", allow: [host], ports: [upstreamPort] });
    const cloned = await run("tools", `git clone -q ${upstreamUrl()}/static/repo.git cloned && cat cloned/README`);
    expect(cloned, cloned.stderr).toMatchObject({ exitCode: 0, stdout: "cloned through the gateway\n" });
    const installed = await run(
      "tools",
      `mkdir -p app && cd app && npm install --no-audit --no-fund --silent ${upstreamUrl()}/static/tiny-1.0.0.tgz && node -p "require('tiny')"`,
    );
    expect(installed, installed.stderr).toMatchObject({ exitCode: 0, stdout: "installed through the gateway\n" });
  });

  it("never reaches a private address, whatever the policy: loopback names, metadata, the LAN", async () => {
    await create("wide", { egress: "open", ports: [80, 443, upstreamPort, otherPort] });
    for (const url of [
      `http://localhost:${otherPort}/`,
      `http://127.0.0.1:${otherPort}/`,
      "http://169.254.169.254/latest/meta-data/",
      `http://10.0.0.1:${otherPort}/`,
      `http://${host}:${otherPort}/`,
    ]) {
      const refused = await curl("wide", url);
      expect(refused.status, url).toBe(403);
      expect(JSON.parse(refused.body), url).toMatchObject({ error: { details: { rule: "private-address" } } });
    }
  });

  it("reaches nothing but the gateway's proxy port directly, whatever a tool does with proxy settings", async () => {
    await create("raw");
    await create("neighbour");
    const gatewayAddress = (await run("raw", "echo $HTTP_PROXY")).stdout.trim().replace(/^.*@([^:]+):\d+$/, "$1");
    const neighbourIp = (await run("neighbour", "hostname -i")).stdout.trim().split(" ")[0] ?? "";
    const spawnerPort = Number(new URL(spawner.url).port);
    const targets: Array<[string, string, number]> = [
      ["a listener on the host's own address", host, otherPort],
      ["a listener on the host, at the bridge", gatewayAddress, otherPort],
      ["the spawner, at the bridge", gatewayAddress, spawnerPort],
      ["the gateway's admin port", gatewayAddress, gateway.adminPort],
      ["another session's runnerd", neighbourIp, 7070],
      ["the metadata service", "169.254.169.254", 80],
      ["the internet, directly", "1.1.1.1", 443],
    ];
    for (const [what, to, port] of targets) {
      const reach = await probe("raw", to, port);
      expect(BLOCKED, `${what} (${to}:${port}) was ${reach}`).toContain(reach);
    }
    // The one way out is open.
    expect(await probe("raw", gatewayAddress, gateway.port)).toBe("connected");
    // No DNS either: names are the gateway's to resolve.
    expect((await run("raw", "getent hosts example.com; echo $?")).stdout.trim()).not.toBe("0");
  });

  it("takes a credential only from its own session, and only while the session lives", async () => {
    await create("owner");
    await create("thief", { egress: "open", ports: [upstreamPort] });
    const stolen = (await run("owner", "echo $HTTP_PROXY")).stdout.trim();
    expect(stolen).toMatch(/^http:\/\/owner:[^@]+@/);
    const used = await curl("thief", `${upstreamUrl()}/`, `-x '${stolen}'`);
    expect(used.status).toBe(407);
    expect(JSON.parse(used.body)).toMatchObject({ error: { code: "PROXY_AUTH_REQUIRED" } });
    // From outside any session: refused too.
    const outside = await fetch(`http://127.0.0.1:${gateway.port}/`, {
      headers: {
        "proxy-authorization": `Basic ${Buffer.from(`${new URL(stolen).username}:${decodeURIComponent(new URL(stolen).password)}`).toString("base64")}`,
      },
    }).then((r) => r.status);
    expect([400, 407]).toContain(outside);
  });

  it("applies a changed policy to a live session within moments, and audits every connection", async () => {
    await create("changing");
    expect((await curl("changing", `${upstreamUrl()}/before`)).status).toBe(403);
    const patched = await spawner.json("PATCH", "/v1/sessions/changing", {
      network: { egress: "allowlist", allow: [host], ports: [upstreamPort] },
    });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(SessionResponseSchema.parse(patched.body).session.network.egress).toBe("allowlist");
    expect(await eventually(async () => (await curl("changing", `${upstreamUrl()}/after`)).status === 200, 5000)).toBe(
      true,
    );
    expect(spawner.logs()).toMatch(/"sessionId":"changing".*"msg":"session egress policy changed"/);
    const audit = gateway
      .logs()
      .split("\n")
      .filter((line) => line.includes('"msg":"egress"') && line.includes('"sessionId":"changing"'));
    expect(audit.some((line) => line.includes('"decision":"denied"'))).toBe(true);
    expect(audit.some((line) => line.includes('"decision":"allowed"') && /"bytesDown":[1-9]/.test(line))).toBe(true);
    const metrics = await (await fetch(`http://127.0.0.1:${gateway.adminPort}/metrics`)).text();
    expect(metrics).toMatch(/sbx_gateway_connections_total\{kind="http",decision="denied"/);
  });

  it("refuses a policy above the deployment's ceiling", async () => {
    const limited = await startSpawner({ env: { SPAWNER_EGRESS_MAX: "allowlist" } });
    try {
      const refused = await limited.json("POST", "/v1/sessions", {
        id: "greedy",
        org: "egress",
        network: { egress: "open" },
      });
      expect(refused.status).toBe(403);
      expect(ErrorEnvelopeSchema.parse(refused.body).error.code).toBe("EGRESS_NOT_ALLOWED");
    } finally {
      await limited.stop();
      await removeDeployment(limited.deployment);
    }
    expect(await docker("ps", "-q", "--filter", "label=sbx.dev/session-id=greedy")).toBe("");
  });
});
