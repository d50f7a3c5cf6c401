import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { ExecResultSchema, SessionResponseSchema } from "@sbx/protocol";
import { DockerComposeEnvironment, type StartedDockerComposeEnvironment, Wait } from "testcontainers";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backendOf, docker, dockerUnavailable, inspect, leftovers, removeDeployment } from "../support/docker.js";
import { eventually } from "../support/proc.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** The development secret compose.yml and the README publish. */
const DEV_SECRET = "sbx-dev-secret-0123456789abcdef";

async function composeUnavailable(): Promise<string | undefined> {
  const reason = await dockerUnavailable();
  if (reason) return reason;
  try {
    await docker("compose", "version");
  } catch {
    return "the docker compose v2 plugin is missing (.ci/run installs it)";
  }
  try {
    await run("openssl", ["version"]);
  } catch {
    return "openssl is missing (scripts/sbx-curl signs with it)";
  }
  return undefined;
}

const skip = skipUnlessPlatform("Docker with compose v2", await composeUnavailable(), "the compose smoke test");

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        address && typeof address === "object" ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

describe("docker compose up, then a signed curl", skippedBecause(skip), () => {
  const suffix = randomBytes(3).toString("hex");
  const project = `sbx-smoke-${suffix}`;
  const env = {
    SBX_DEPLOYMENT: `smoke-${suffix}`,
    SBX_NETWORK: `sbx-smoke-${suffix}`,
    SBX_PORT: "0",
    SBX_METRICS_PORT: "0",
  };
  let environment: StartedDockerComposeEnvironment | undefined;
  const curl = (...args: string[]) =>
    run(`${ROOT}/scripts/sbx-curl`, args, {
      cwd: ROOT,
      env: { ...process.env, SBX_URL: `http://127.0.0.1:${env.SBX_PORT}`, SBX_SECRET: DEV_SECRET },
    });

  beforeAll(async () => {
    env.SBX_PORT = String(await freePort());
    env.SBX_METRICS_PORT = String(await freePort());
    // The same `docker compose up --build` a newcomer runs; testcontainers waits for the spawner's
    // healthcheck and for the runtime image's one-shot build container to finish.
    environment = await new DockerComposeEnvironment(ROOT, "compose.yml")
      .withProjectName(project)
      .withEnvironment(env)
      .withBuild()
      .withWaitStrategy("runtime-1", Wait.forOneShotStartup())
      .withWaitStrategy("spawner-1", Wait.forHealthCheck())
      .withWaitStrategy("gateway-1", Wait.forHealthCheck())
      .withStartupTimeout(300_000)
      .up();
  }, 600_000);

  afterAll(async () => {
    await removeDeployment(env.SBX_DEPLOYMENT).catch(() => undefined);
    await environment?.down({ removeVolumes: true }).catch(() => undefined);
    await docker("network", "rm", env.SBX_NETWORK).catch(() => "");
  });

  const metric = async (name: string) => {
    const text = await (await fetch(`http://127.0.0.1:${env.SBX_METRICS_PORT}/metrics`)).text();
    return Number(
      text
        .split("\n")
        .find((line) => line.startsWith(name))
        ?.split(" ")
        .at(-1) ?? 0,
    );
  };

  it("creates a session from the warm pool, runs a command in it and deletes it, signed by scripts/sbx-curl", async () => {
    // The pool compose keeps fills in the background; the first sessions claim from it.
    expect(await eventually(async () => (await metric('sbx_pool_members{profile="default"}')) === 2, 60_000)).toBe(
      true,
    );
    const created = SessionResponseSchema.parse(
      JSON.parse((await curl("POST", "/v1/sessions", '{"org":"smoke"}')).stdout),
    );
    expect(created.session.state).toBe("ready");
    const id = created.session.id;
    const exec = await curl("POST", `/v1/sessions/${id}/execs?wait=true`, '{"shell":"echo hello from $(id -un)"}');
    expect(ExecResultSchema.parse(JSON.parse(exec.stdout))).toMatchObject({
      stdout: "hello from sandbox\n",
      outcome: "completed",
    });
    const deleted = await curl("DELETE", `/v1/sessions/${id}`, "-", "-o", "/dev/null", "-w", "%{http_code}");
    expect(deleted.stdout).toBe("204");
    expect(await metric("sbx_pool_claims_total")).toBe(1);
    // What is left is the pool, refilled: no container of the session.
    expect(
      await eventually(async () => {
        const pool = await backendOf(env.SBX_DEPLOYMENT).listPool();
        const members = pool.map((m) => `sbx-${env.SBX_DEPLOYMENT}-${m.memberId}`);
        const left = (await leftovers(env.SBX_DEPLOYMENT)).containers;
        return left.length === 2 && left.every((name) => members.includes(name));
      }, 30_000),
    ).toBe(true);
    const logs = await docker("logs", `${project}-spawner-1`);
    expect(logs).toContain("DEVELOPMENT secrets published in the README");
  });

  it("keeps sessions from reaching each other and the spawner, in compose's own setup", async () => {
    for (const id of ["one", "two"]) {
      expect(JSON.parse((await curl("POST", "/v1/sessions", `{"id":"${id}","org":"smoke"}`)).stdout)).toMatchObject({
        session: { state: "ready" },
      });
    }
    const two = await inspect(`sbx-${env.SBX_DEPLOYMENT}-two`);
    const network = Object.values(two.NetworkSettings.Networks)[0];
    const inOne = async (argv: string[]) =>
      ExecResultSchema.parse(
        JSON.parse((await curl("POST", "/v1/sessions/one/execs?wait=true", JSON.stringify({ argv }))).stdout),
      );
    for (const target of [
      `http://${network?.IPAddress}:7070/healthz`,
      `http://${network?.Gateway}:${env.SBX_PORT}/healthz`,
      `http://${network?.Gateway}:${env.SBX_METRICS_PORT}/metrics`,
    ]) {
      // Directly, ignoring the proxy settings: no connection at all.
      const direct = await inOne(["curl", "-s", "--noproxy", "*", "-o", "/dev/null", "-m", "3", target]);
      expect(direct.exitCode, target).not.toBe(0);
      // Through the gateway (the session's HTTP_PROXY): refused as a private address.
      const proxied = await inOne(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5", target]);
      expect(proxied.stdout, target).toBe("403");
    }
    // Metrics answer on their own listener, on the host's loopback.
    expect(await (await fetch(`http://127.0.0.1:${env.SBX_METRICS_PORT}/metrics`)).text()).toContain("sbx_sessions");
    for (const id of ["one", "two"]) await curl("DELETE", `/v1/sessions/${id}`, "-");
  });

  it("stops cleanly with docker compose down", async () => {
    await environment?.down();
    environment = undefined;
    const { stdout } = await run("docker", ["compose", "-p", project, "ps", "-a", "-q"], { cwd: ROOT });
    expect(stdout.trim()).toBe("");
  });
});
