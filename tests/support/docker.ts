import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { promisify } from "node:util";
import { createLogger } from "@sbx/edge";
import { DockerBackend } from "@sbx/spawner";
import { expect } from "vitest";
import { z } from "zod";

const run = promisify(execFile);

export const RUNTIME_IMAGE = process.env.SBX_TEST_RUNTIME_IMAGE ?? "sbx-runtime:latest";

/** Runs the docker CLI; returns stdout. */
export async function docker(...args: string[]): Promise<string> {
  const { stdout } = await run("docker", args, { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** Why Docker-backed tests cannot run here, or undefined when they can. */
export async function dockerUnavailable(): Promise<string | undefined> {
  try {
    await docker("info", "--format", "{{.ServerVersion}}");
  } catch {
    return "no Docker engine answers `docker info` (CI installs and starts one: .ci/run)";
  }
  try {
    await docker("image", "inspect", RUNTIME_IMAGE, "--format", "{{.Id}}");
  } catch {
    return `image ${RUNTIME_IMAGE} is missing (scripts/build-images.sh builds it)`;
  }
  return undefined;
}

/** The spawner's own Docker backend for a deployment: what tests ask about the objects it owns. */
export function backendOf(deployment: string, access: "address" | "published" = "published"): DockerBackend {
  return new DockerBackend(
    {
      socket: "/var/run/docker.sock",
      deployment,
      network: `sbx-${deployment}`,
      access,
      pull: "never",
      orphanVolumeGraceMs: 10_000,
      stopTimeoutSeconds: 10,
      lockImage: RUNTIME_IMAGE,
      // As the spawner runs: each session locked down to a gateway (none here, so nothing out).
      egressGuard: true,
      gatewayPort: undefined,
      subnet: undefined,
    },
    createLogger("tests", "warn"),
  );
}

/** Everything a deployment left in the engine, as its backend sees it: containers, volumes, its network. */
export async function leftovers(
  deployment: string,
): Promise<{ containers: string[]; volumes: string[]; networks: string[] }> {
  const owned = await backendOf(deployment).owned();
  const named = (kind: string) => owned.filter((o) => o.kind === kind).map((o) => o.name);
  return { containers: named("container"), volumes: named("volume"), networks: named("network") };
}

/** Removes everything of a deployment; for test teardown, even after a failure. */
export async function removeDeployment(deployment: string): Promise<void> {
  const backend = backendOf(deployment);
  const owned = await backend.owned().catch(() => []);
  const sessions = new Set(owned.flatMap((o) => (o.sessionId === undefined ? [] : [o.sessionId])));
  for (const id of sessions) await backend.destroy(id).catch(() => false);
  // What is no session's: a warm pool's lock.
  for (const container of (await backend.owned().catch(() => [])).filter((o) => o.kind === "container")) {
    await docker("rm", "-f", container.name).catch(() => "");
  }
  for (const network of owned.filter((o) => o.kind === "network")) {
    await docker("network", "rm", network.name).catch(() => "");
  }
}

/**
 * The sbx labels of a session's container and volumes, by object name: what the spawner wrote
 * (a claimed session's container keeps its pool member's name, and is found by its claim).
 */
export async function sbxTruth(deployment: string, id: string): Promise<Record<string, Record<string, string>>> {
  const sbxOnly = (labels: Record<string, string> | null | undefined) =>
    Object.fromEntries(Object.entries(labels ?? {}).filter(([key]) => key.startsWith("sbx.")));
  const truth: Record<string, Record<string, string>> = {};
  const container = `sbx-${deployment}-${id}`;
  const found = (await docker("ps", "-aq", "--filter", `name=^/${container}$`)).trim();
  if (found !== "") truth[container] = sbxOnly((await inspect(container)).Config.Labels);
  const volumes = (await docker("volume", "ls", "-q", "--filter", `label=sbx.dev/deployment=${deployment}`))
    .split("\n")
    .filter((name) => name.startsWith(`sbx-${deployment}-${id}-`));
  for (const volume of volumes) {
    const [inspected] = VolumeInspectSchema.parse(JSON.parse(await docker("volume", "inspect", volume)));
    truth[volume] = sbxOnly(inspected?.Labels);
  }
  return truth;
}

const VolumeInspectSchema = z.array(z.object({ Labels: z.record(z.string(), z.string()).nullish() }));

export async function inspect(name: string): Promise<DockerInspect> {
  const parsed: unknown = JSON.parse(await docker("inspect", name));
  if (!Array.isArray(parsed) || parsed.length !== 1) throw new Error(`docker inspect ${name}: unexpected output`);
  return parsed[0];
}

/** The parts of `docker inspect` the tests look at. */
export interface DockerInspect {
  Name: string;
  Config: {
    Env: string[];
    Labels: Record<string, string>;
    User: string;
    Cmd: string[] | null;
    Entrypoint: string[] | null;
    ExposedPorts?: Record<string, object> | null;
  };
  HostConfig: {
    ReadonlyRootfs: boolean;
    CapDrop: string[] | null;
    SecurityOpt: string[] | null;
    Memory: number;
    NanoCpus: number;
    PidsLimit: number;
    Privileged: boolean;
    Tmpfs: Record<string, string> | null;
    PortBindings: Record<string, Array<{ HostIp: string; HostPort: string }>> | null;
  };
  Mounts: Array<{ Type: string; Name?: string; Destination: string }>;
  State: { Running: boolean; Status: string };
  NetworkSettings: {
    Networks: Record<string, { IPAddress: string; Gateway: string }>;
    /** Each exposed port, with its host bindings (null when it is exposed but not published). */
    Ports: Record<string, Array<{ HostIp: string; HostPort: string }> | null> | null;
  };
}

/** runnerd's port inside a session container. */
export const RUNNERD_PORT_KEY = "7070/tcp";

/**
 * Checks what the spawner's access mode (SPAWNER_RUNNERD_ACCESS) promises about a session
 * container's runnerd port, and returns where runnerd should answer from the host:
 * - `address`: nothing is published on any host address, neither asked for (HostConfig) nor in
 *   effect (NetworkSettings), and runnerd is at the container's IP on the session network;
 * - `published`: the port is published, and every binding is on 127.0.0.1.
 * Each check first proves there is something to check (the exposed port, at least one binding),
 * so a loop over empty data cannot pass.
 */
export function expectRunnerdExposure(
  info: DockerInspect,
  access: "address" | "published",
  network: string,
): { host: string; port: number } {
  const ports = info.NetworkSettings.Ports ?? {};
  // An internal network (address mode) records no port map at all: the image's exposed port says it.
  const exposed = [...Object.keys(info.Config.ExposedPorts ?? {}), ...Object.keys(ports)];
  expect(exposed, "runnerd's port is exposed").toContain(RUNNERD_PORT_KEY);
  const inEffect = Object.entries(ports).flatMap(([port, bindings]) =>
    (bindings ?? []).map((b) => `${port} on ${b.HostIp}:${b.HostPort}`),
  );
  const asked = Object.entries(info.HostConfig.PortBindings ?? {}).flatMap(([port, bindings]) =>
    (bindings ?? []).map((b) => `${port} on ${b.HostIp || "every address"}:${b.HostPort || "any port"}`),
  );
  if (access === "address") {
    expect(asked, "host port bindings asked for").toEqual([]);
    expect(inEffect, "host port bindings in effect").toEqual([]);
    expect(Object.keys(info.NetworkSettings.Networks), "the networks it is on").toEqual([network]);
    const ip = info.NetworkSettings.Networks[network]?.IPAddress ?? "";
    expect(ip, "its address on the session network").toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    return { host: ip, port: 7070 };
  }
  const bindings = ports[RUNNERD_PORT_KEY] ?? [];
  expect(bindings.length, "host bindings of runnerd's port").toBeGreaterThan(0);
  expect(asked.length, "host port bindings asked for").toBeGreaterThan(0);
  const loopbackOnly = (binding: string) => binding.includes(" on 127.0.0.1:");
  expect(
    asked.filter((b) => !loopbackOnly(b)),
    "bindings asked for beyond loopback",
  ).toEqual([]);
  expect(
    inEffect.filter((b) => !loopbackOnly(b)),
    "bindings in effect beyond loopback",
  ).toEqual([]);
  return { host: "127.0.0.1", port: Number(bindings[0]?.HostPort) };
}

/** A tag no image has, for the "image cannot be had" paths. */
export const MISSING_IMAGE = "sbx-test-missing:latest";

/** Where the `oom` image waits for its cue, in the workspace. */
export const OOM_TRIGGER_FILE = ".sbx-test-oom";

/** Cues a session of the `oom` image, through its runnerd, to run out of memory. */
export async function cueOutOfMemory(s: { endpoint: { host: string; port: number }; token: string }): Promise<void> {
  const response = await fetch(
    `http://${s.endpoint.host}:${s.endpoint.port}/v1/files/content?path=${OOM_TRIGGER_FILE}`,
    { method: "PUT", headers: { authorization: `Bearer ${s.token}` }, body: "now" },
  );
  if (!response.ok) throw new Error(`could not cue the oom image: ${response.status}`);
}

/** Base images and entrypoints of the small images the failure tests create sessions from. */
const MISBEHAVING = {
  /** Runs, but never answers on runnerd's port. */
  silent: { from: "node:24-bookworm-slim", entrypoint: ["sleep", "infinity"] },
  /** Stops at once. */
  quitting: { from: "node:24-bookworm-slim", entrypoint: ["false"] },
  /** Runs for a second, then stops: after it was seen running, before anything answers. */
  dying: { from: "node:24-bookworm-slim", entrypoint: ["sh", "-c", "sleep 1; exit 3"] },
  /**
   * A working session until OOM_TRIGGER_FILE appears in its workspace; then its main process
   * allocates until the kernel kills it for memory, and the container ends OOM-killed.
   */
  oom: {
    from: RUNTIME_IMAGE,
    entrypoint: [
      "tini",
      "--",
      "sh",
      "-c",
      `node /opt/sbx/runnerd.mjs & while [ ! -e /workspace/${OOM_TRIGGER_FILE} ]; do sleep 0.1; done; exec node -e 'const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))'`,
    ],
  },
} as const;

/**
 * Builds a small image that misbehaves as `kind` says and returns its tag. Each call gets its own
 * tag, so test files running in parallel never remove an image another file is about to use.
 */
export async function buildMisbehavingImage(kind: keyof typeof MISBEHAVING): Promise<string> {
  const tag = `sbx-test-${kind}:${randomBytes(4).toString("hex")}`;
  const { from, entrypoint } = MISBEHAVING[kind];
  const dockerfile = `FROM ${from}\nENTRYPOINT ${JSON.stringify(entrypoint)}\n`;
  await new Promise<void>((resolve, reject) => {
    const child = spawn("docker", ["build", "-q", "-t", tag, "-"], { stdio: ["pipe", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`docker build ${tag} failed: ${stderr}`))));
    child.stdin.end(dockerfile);
  });
  return tag;
}
