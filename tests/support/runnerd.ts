import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { waitForListening } from "./service-process.js";

export const RUNNERD_BUNDLE = fileURLToPath(new URL("../../services/runnerd/dist/runnerd.mjs", import.meta.url));

export interface RunnerdHandle {
  url: string;
  token: string;
  root: string;
  child: ChildProcess;
  /** Every line runnerd wrote to stdout/stderr so far. */
  logs(): string;
  /** fetch() against runnerd with the bearer token. */
  request(pathAndQuery: string, init?: RequestInit): Promise<Response>;
  /** JSON request helper: returns status and parsed body. */
  json(method: string, pathAndQuery: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  /** SIGTERM, then SIGKILL after a bound; resolves with the exit code and signal. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /**
   * Command prefix to run node under (e.g. unshare + tini). Stopping then
   * signals the wrapper's child, since unshare ignores SIGTERM itself.
   */
  wrap?: string[];
  root?: string;
  /** The bearer token (default: a fresh one); a restart on the same root reuses the earlier one. */
  token?: string;
  /** Path of the bundle to run (default: the build output). */
  bundle?: string;
}

/** Starts the built runnerd bundle on 127.0.0.1 with a random port, a temp root and a fresh token. */
export async function startRunnerd(options: StartOptions = {}): Promise<RunnerdHandle> {
  const bundle = options.bundle ?? RUNNERD_BUNDLE;
  if (!existsSync(bundle)) throw new Error(`${bundle} is missing: run the build first`);
  const root = options.root ?? (await mkdtemp(path.join(tmpdir(), "runnerd-test-")));
  const token = options.token ?? randomBytes(24).toString("base64url");
  const env = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    RUNNERD_HOST: "127.0.0.1",
    RUNNERD_PORT: "0",
    RUNNERD_ROOT: root,
    RUNNERD_TOKEN_SHA256: createHash("sha256").update(token).digest("hex"),
    RUNNERD_KILL_GRACE_MS: "1000",
    RUNNERD_SHUTDOWN_GRACE_MS: "1000",
    ...options.env,
  };
  const argv = [...(options.wrap ?? []), process.execPath, bundle];
  const [file, ...args] = argv;
  if (file === undefined) throw new Error("empty command");
  const child = spawn(file, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  const { port, output, exited } = await waitForListening(child, "runnerd", 15_000);
  const url = `http://127.0.0.1:${port}`;
  const request = (pathAndQuery: string, init: RequestInit = {}) =>
    fetch(`${url}${pathAndQuery}`, {
      ...init,
      headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) },
    });
  let stopped: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  return {
    url,
    token,
    root,
    child,
    logs: output,
    request,
    async json(method: string, pathAndQuery: string, body?: unknown) {
      const response = await request(pathAndQuery, {
        method,
        ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { "content-type": "application/json" } }),
      });
      const text = await response.text();
      const parsed: unknown = text === "" ? undefined : JSON.parse(text);
      return { status: response.status, body: parsed };
    },
    stop() {
      if (stopped) return stopped;
      stopped = (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const target = options.wrap ? firstChild(child.pid) : child.pid;
          if (target !== undefined) process.kill(target, "SIGTERM");
          const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
          const result = await exited;
          clearTimeout(timer);
          if (!options.root) await rm(root, { recursive: true, force: true });
          return result;
        }
        if (!options.root) await rm(root, { recursive: true, force: true });
        return exited;
      })();
      return stopped;
    },
  };
}

/** The first child of `pid`, from /proc (Linux). */
function firstChild(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/);
    return children[0] ? Number(children[0]) : undefined;
  } catch {
    return undefined;
  }
}
