import http, { type IncomingMessage, type ServerResponse } from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { Logger } from "@sbx/edge";
import { ApiError } from "@sbx/protocol";
import type { PrivateAllowance } from "../egress/address-policy.js";
import { decide, type Resolver, type Verdict } from "../egress/decision.js";
import type { GrantSource } from "../grants/grant-source.js";
import type { Metrics } from "../metrics.js";
import type { ConnectionLimit } from "./connection-limit.js";
import { asApiError, rawRefusal, refusalResponse } from "./refusal.js";
import { authenticate, type SessionCaller } from "./session-auth.js";

export interface ProxyDeps {
  secret: string;
  grants: GrantSource;
  resolve: Resolver;
  allowPrivate: PrivateAllowance;
  limit: ConnectionLimit;
  connectTimeoutMs: number;
  metrics: Metrics;
  log: Logger;
}

/** Headers that belong to one hop, or to us: never passed upstream or back. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authorization",
  "proxy-authenticate",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** One connection's account, logged (and counted) when it ends. */
interface Audit {
  sessionId: string | undefined;
  kind: "connect" | "http";
  host: string;
  port: number;
  address?: string;
  decision: "allowed" | "denied";
  rule?: string;
  status?: number;
  bytesUp: number;
  bytesDown: number;
  startedAt: number;
}

/**
 * The proxy sessions reach (HTTP_PROXY): CONNECT tunnels (TLS passes through untouched; the
 * name asked for is what the policy judges) and plain HTTP requests in absolute form. Every
 * request proves its session (session-auth.ts), is judged (decision.ts), and is audited: one
 * JSON log line per connection with the session, destination, decision and bytes.
 */
export function createProxyServer(deps: ProxyDeps): http.Server {
  const server = http.createServer((req, res) => void forward(req, res, deps));
  server.on("connect", (req: IncomingMessage, socket: Duplex, head: Buffer) => void tunnel(req, socket, head, deps));
  return server;
}

async function tunnel(req: IncomingMessage, client: Duplex, head: Buffer, deps: ProxyDeps): Promise<void> {
  const { host, port } = splitAuthority(req.url ?? "");
  const audit: Audit = {
    sessionId: undefined,
    kind: "connect",
    host,
    port,
    decision: "denied",
    bytesUp: 0,
    bytesDown: 0,
    startedAt: Date.now(),
  };
  client.on("error", () => undefined);
  let release: (() => void) | undefined;
  try {
    const caller = await authenticate(
      req.headers["proxy-authorization"],
      req.socket.remoteAddress,
      deps.secret,
      deps.grants,
    );
    audit.sessionId = caller.sessionId;
    const address = allowedAddress(await judge(caller, host, port, deps), audit);
    release = deps.limit.take(caller.sessionId);
    const upstream = await open(address, port, deps.connectTimeoutMs, host);
    audit.decision = "allowed";
    audit.status = 200;
    deps.metrics.active.inc();
    client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
    if (head.length > 0) upstream.write(head);
    const done = once(() => {
      deps.metrics.active.dec();
      release?.();
      audit.bytesUp = upstream.bytesWritten;
      audit.bytesDown = upstream.bytesRead;
      finish(audit, deps);
      client.destroy();
      upstream.destroy();
    });
    upstream.on("error", done);
    upstream.on("close", done);
    client.on("close", done);
    client.pipe(upstream);
    upstream.pipe(client);
  } catch (error) {
    release?.();
    const refusal = asApiError(error);
    audit.status = refusal.status;
    if (refusal.code === "UPSTREAM_UNREACHABLE") {
      // Allowed, and then the destination did not answer: counted as such, not as a refusal.
      audit.decision = "allowed";
      audit.rule = "upstream-unreachable";
    }
    client.end(rawRefusal(refusal));
    finish(audit, deps);
  }
}

async function forward(req: IncomingMessage, res: ServerResponse, deps: ProxyDeps): Promise<void> {
  const target = absoluteHttpUrl(req.url);
  const audit: Audit = {
    sessionId: undefined,
    kind: "http",
    host: target?.hostname ?? "",
    port: target ? Number(target.port || 80) : 0,
    decision: "denied",
    bytesUp: 0,
    bytesDown: 0,
    startedAt: Date.now(),
  };
  let release: (() => void) | undefined;
  try {
    if (!target) {
      throw new ApiError(
        "VALIDATION_FAILED",
        "this is a proxy: ask for an absolute http:// URL, or CONNECT host:port for https",
      );
    }
    const caller = await authenticate(
      req.headers["proxy-authorization"],
      req.socket.remoteAddress,
      deps.secret,
      deps.grants,
    );
    audit.sessionId = caller.sessionId;
    const address = allowedAddress(await judge(caller, audit.host, audit.port, deps), audit);
    release = deps.limit.take(caller.sessionId);
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    }
    headers.host = target.host;
    const upstream = http.request({
      host: address,
      port: audit.port,
      method: req.method,
      path: `${target.pathname}${target.search}`,
      headers,
      setHost: false,
      timeout: deps.connectTimeoutMs,
    });
    deps.metrics.active.inc();
    const done = once(() => {
      deps.metrics.active.dec();
      release?.();
      finish(audit, deps);
    });
    upstream.on("timeout", () => upstream.destroy(new Error("timed out")));
    upstream.on("error", (error) => {
      if (!res.headersSent) {
        respond(res, new ApiError("UPSTREAM_UNREACHABLE", `${audit.host}:${audit.port}: ${error.message}`), audit);
      } else res.destroy();
      done();
    });
    upstream.on("response", (answer) => {
      audit.decision = "allowed";
      audit.status = answer.statusCode ?? 502;
      const passed: http.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(answer.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) passed[name] = value;
      }
      res.writeHead(answer.statusCode ?? 502, passed);
      answer.on("data", (chunk: Buffer) => {
        audit.bytesDown += chunk.length;
      });
      answer.pipe(res);
      answer.on("end", done);
      answer.on("error", () => {
        res.destroy();
        done();
      });
    });
    req.on("data", (chunk: Buffer) => {
      audit.bytesUp += chunk.length;
    });
    res.on("close", () => {
      if (!res.writableFinished) upstream.destroy();
      done();
    });
    req.pipe(upstream);
  } catch (error) {
    release?.();
    respond(res, asApiError(error), audit);
    finish(audit, deps);
  }
}

async function judge(caller: SessionCaller, host: string, port: number, deps: ProxyDeps): Promise<Verdict> {
  if (host === "" || !Number.isInteger(port) || port < 1 || port > 65_535) {
    return { allowed: false, rule: "policy", message: "ask for host:port" };
  }
  return decide(caller.grant, host, port, deps.resolve, deps.allowPrivate);
}

/** The address to connect to, or the refusal (403 EGRESS_DENIED naming the rule). */
function allowedAddress(verdict: Verdict, audit: Audit): string {
  if (verdict.allowed) {
    audit.address = verdict.address;
    return verdict.address;
  }
  audit.rule = verdict.rule;
  throw new ApiError("EGRESS_DENIED", verdict.message, {
    details: { rule: verdict.rule, host: audit.host, port: audit.port },
  });
}

function open(address: string, port: number, timeoutMs: number, host: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address, port });
    const timer = setTimeout(() => socket.destroy(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("error", (error) => {
      clearTimeout(timer);
      reject(new ApiError("UPSTREAM_UNREACHABLE", `${host}:${port}: ${error.message}`));
    });
  });
}

function respond(res: ServerResponse, error: ApiError, audit: Audit): void {
  audit.status = error.status;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const { status, headers, body } = refusalResponse(error);
  res.writeHead(status, headers);
  res.end(body);
}

function finish(audit: Audit, deps: ProxyDeps): void {
  deps.metrics.connections.inc({ kind: audit.kind, decision: audit.decision, rule: audit.rule ?? "" });
  deps.metrics.bytes.inc({ direction: "up" }, audit.bytesUp);
  deps.metrics.bytes.inc({ direction: "down" }, audit.bytesDown);
  deps.log.info(
    {
      sessionId: audit.sessionId,
      kind: audit.kind,
      host: audit.host,
      port: audit.port,
      address: audit.address,
      decision: audit.decision,
      rule: audit.rule,
      status: audit.status,
      bytesUp: audit.bytesUp,
      bytesDown: audit.bytesDown,
      durationMs: Date.now() - audit.startedAt,
    },
    "egress",
  );
}

/** `host:port` of a CONNECT (IPv6 in brackets). */
function splitAuthority(authority: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:]+):(\d{1,5})$/.exec(authority);
  return match?.[1] && match[2] ? { host: match[1], port: Number(match[2]) } : { host: authority, port: 0 };
}

function absoluteHttpUrl(url: string | undefined): URL | undefined {
  if (url === undefined || !/^http:\/\//i.test(url)) return undefined;
  try {
    return new URL(url);
  } catch {
    return undefined;
  }
}

function once(fn: () => void): () => void {
  let called = false;
  return () => {
    if (called) return;
    called = true;
    fn();
  };
}
