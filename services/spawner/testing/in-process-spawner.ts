import { createServer, type Server } from "node:http";
import { Writable } from "node:stream";
import { getRequestListener } from "@hono/node-server";
import { type Clock, createLogger, systemClock } from "@sbx/edge";
import { signRequest } from "@sbx/protocol";
import { createSpawner, type Spawner } from "../src/app.js";
import { type Config, loadConfig } from "../src/config.js";
import { MemoryBackend, type MemoryBackendOptions } from "./memory-backend.js";

export const TEST_KEY = { id: "test", secret: "0123456789abcdef-test-secret" };

export interface InProcessSpawner {
  spawner: Spawner;
  backend: MemoryBackend;
  config: Config;
  url: string;
  /** Everything the spawner logged, as text. */
  logs(): string;
  /** A signed request against the served app (real HTTP, so the proxy runs as in production). */
  request(method: string, pathWithQuery: string, init?: { body?: string; signal?: AbortSignal }): Promise<Response>;
  json(method: string, pathWithQuery: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  close(): Promise<void>;
}

/**
 * The whole spawner app on an in-memory backend, served on 127.0.0.1 in
 * this process: fast tests of the spawner's own logic without Docker or a
 * cluster. `env` overrides configuration; `backend` shares one platform
 * between several replicas.
 */
export async function startInProcessSpawner(
  options: { env?: Record<string, string>; backend?: MemoryBackend | MemoryBackendOptions; clock?: Clock } = {},
): Promise<InProcessSpawner> {
  const config = loadConfig({
    SPAWNER_HMAC_KEYS: `${TEST_KEY.id}:${TEST_KEY.secret}`,
    SPAWNER_RUNNERD_SECRET: "runnerd-secret-for-in-process-tests-0123456789",
    SPAWNER_CREATE_TIMEOUT_MS: "3000",
    ...options.env,
  });
  const clock = options.clock ?? systemClock;
  const backend =
    options.backend instanceof MemoryBackend ? options.backend : new MemoryBackend({ clock, ...options.backend });
  let logged = "";
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logged += chunk.toString();
      done();
    },
  });
  const log = createLogger("spawner", "debug", sink);
  const spawner = createSpawner({ config, backend, version: "test", clock, log });
  const stopFollowing = spawner.registry.follow();
  const server: Server = createServer(getRequestListener(spawner.app.fetch));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("no port");
  const url = `http://127.0.0.1:${address.port}`;
  const request = (method: string, pathWithQuery: string, init: { body?: string; signal?: AbortSignal } = {}) =>
    fetch(`${url}${pathWithQuery}`, {
      method,
      headers: signRequest({
        keyId: TEST_KEY.id,
        secret: TEST_KEY.secret,
        method,
        pathWithQuery,
        body: init.body,
        now: clock.now(),
      }),
      ...(init.body === undefined ? {} : { body: init.body }),
      ...(init.signal ? { signal: init.signal } : {}),
    });
  return {
    spawner,
    backend,
    config,
    url,
    logs: () => logged,
    request,
    async json(method, pathWithQuery, body) {
      const response = await request(method, pathWithQuery, body === undefined ? {} : { body: JSON.stringify(body) });
      const text = await response.text();
      return { status: response.status, body: text === "" ? undefined : JSON.parse(text) };
    },
    async close() {
      stopFollowing();
      spawner.proxy.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
