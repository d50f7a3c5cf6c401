import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { waitForListening } from "./service-process.js";

export const GATEWAY_BUNDLE = fileURLToPath(new URL("../../services/gateway/dist/gateway.mjs", import.meta.url));

export interface GatewayHandle {
  /** The proxy's port (on every host address: sessions reach it at their network's gateway address). */
  port: number;
  /** The admin listener's port (health, metrics). */
  adminPort: number;
  child: ChildProcess;
  logs(): string;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

/** A free TCP port on this host, for a service whose port another must know before it starts. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

/** A secret the spawner and the gateway share, fresh for each test deployment. */
export function gatewaySecret(): string {
  return randomBytes(24).toString("hex");
}

/** Starts the built gateway on this host, its proxy on `port` (every address), asking `spawnerUrl` for grants. */
export async function startGateway(options: {
  port: number;
  spawnerUrl: string;
  secret: string;
  env?: Record<string, string>;
}): Promise<GatewayHandle> {
  if (!existsSync(GATEWAY_BUNDLE)) throw new Error(`${GATEWAY_BUNDLE} is missing: run the build first`);
  const child = spawn(process.execPath, [GATEWAY_BUNDLE], {
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      GATEWAY_PROXY_HOST: "0.0.0.0",
      GATEWAY_PROXY_PORT: String(options.port),
      GATEWAY_ADMIN_HOST: "0.0.0.0",
      GATEWAY_ADMIN_PORT: "0",
      GATEWAY_SECRET: options.secret,
      GATEWAY_SPAWNER_URL: options.spawnerUrl,
      ...options.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const { port, output, exited } = await waitForListening(child, "gateway", 20_000);
  const adminPort = await new Promise<number>((resolve, reject) => {
    const started = Date.now();
    const look = () => {
      const match = /"port":(\d+)[^\n]*"msg":"admin listening"/.exec(output());
      if (match?.[1]) resolve(Number(match[1]));
      else if (Date.now() - started > 10_000)
        reject(new Error(`the gateway's admin listener did not start:\n${output()}`));
      else setTimeout(look, 20);
    };
    look();
  });
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  return { port, adminPort, child, logs: output, stop: () => end("SIGTERM"), kill: () => end("SIGKILL") };
}
