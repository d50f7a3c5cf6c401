import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { signRequest, UNSIGNED_PAYLOAD } from "@sbx/protocol";
import { waitForListening } from "./service-process.js";

export const SPAWNER_BUNDLE = fileURLToPath(new URL("../../services/spawner/dist/spawner.mjs", import.meta.url));

export interface SpawnerHandle {
  url: string;
  /** Where its Prometheus metrics listener answers (from its `metrics listening` log line). */
  metricsUrl(): string;
  deployment: string;
  keyId: string;
  secret: string;
  runnerdSecret: string;
  child: ChildProcess;
  logs(): string;
  /** A signed request. `body` is sent as is (strings and bytes); UNSIGNED streams. */
  request(method: string, pathWithQuery: string, options?: SignedRequestOptions): Promise<Response>;
  /** A signed JSON request; returns status and parsed body. */
  json(
    method: string,
    pathWithQuery: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown; headers: Headers }>;
  /** SIGTERM (sessions keep running); resolves when the process exited. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
}

export interface SignedRequestOptions {
  body?: string | Uint8Array;
  /** Send the body as UNSIGNED-PAYLOAD (streaming upload routes only). */
  unsigned?: boolean;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface StartSpawnerOptions {
  deployment?: string;
  env?: Record<string, string>;
  /** Reuse the secrets of an earlier spawner (a second replica, or a restart). */
  secrets?: { secret: string; runnerdSecret: string };
}

/** Starts the built spawner on 127.0.0.1 (runnerd reached by published ports) for one test deployment. */
export async function startSpawner(options: StartSpawnerOptions = {}): Promise<SpawnerHandle> {
  if (!existsSync(SPAWNER_BUNDLE)) throw new Error(`${SPAWNER_BUNDLE} is missing: run the build first`);
  const deployment = options.deployment ?? `t-${randomBytes(4).toString("hex")}`;
  const keyId = "test";
  const secret = options.secrets?.secret ?? randomBytes(24).toString("hex");
  const runnerdSecret = options.secrets?.runnerdSecret ?? randomBytes(32).toString("hex");
  const child = spawn(process.execPath, [SPAWNER_BUNDLE], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      SPAWNER_HOST: "127.0.0.1",
      SPAWNER_PORT: "0",
      SPAWNER_METRICS_PORT: "0",
      SPAWNER_DEPLOYMENT: deployment,
      SPAWNER_HMAC_KEYS: `${keyId}:${secret}`,
      SPAWNER_RUNNERD_SECRET: runnerdSecret,
      SPAWNER_PULL_IMAGES: "never",
      SPAWNER_CREATE_TIMEOUT_MS: "30000",
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const { port, output, exited } = await waitForListening(child, "spawner", 20_000);
  const url = `http://127.0.0.1:${port}`;
  const request = (method: string, pathWithQuery: string, o: SignedRequestOptions = {}) => {
    const headers = signRequest({
      keyId,
      secret,
      method,
      pathWithQuery,
      body: o.unsigned ? UNSIGNED_PAYLOAD : o.body,
    });
    return fetch(`${url}${pathWithQuery}`, {
      method,
      headers: { ...headers, ...o.headers },
      ...(o.body === undefined ? {} : { body: o.body }),
      ...(o.signal ? { signal: o.signal } : {}),
    });
  };
  return {
    url,
    metricsUrl() {
      const port = /"port":(\d+)[^\n]*"msg":"metrics listening"/.exec(output())?.[1];
      if (port === undefined) throw new Error("the spawner has not logged its metrics listener");
      return `http://127.0.0.1:${port}`;
    },
    deployment,
    keyId,
    secret,
    runnerdSecret,
    child,
    logs: output,
    request,
    async json(method, pathWithQuery, body) {
      const response = await request(method, pathWithQuery, body === undefined ? {} : { body: JSON.stringify(body) });
      const text = await response.text();
      const parsed: unknown = text === "" ? undefined : JSON.parse(text);
      return { status: response.status, body: parsed, headers: response.headers };
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}
