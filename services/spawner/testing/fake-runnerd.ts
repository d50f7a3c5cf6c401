import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Clock } from "@sbx/edge";
import { encodeSseEvent, REQUEST_ID_HEADER, SSE_HEARTBEAT, sha256Hex } from "@sbx/protocol";

/**
 * A stand-in for runnerd, for unit tests of the spawner: a real HTTP server
 * on 127.0.0.1 that answers what the spawner itself calls (status,
 * env) and serves exec event streams that stay open until the exec is
 * finished or the server dies. The real runnerd is tested on its own.
 */
/** A reply written by hand to a route of the fake runnerd. */
export type RouteAnswer = (res: ServerResponse) => void;

export class FakeRunnerd {
  readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly env = new Map<string, string>();
  private lastActivityAt: number;
  private readonly incarnation = randomUUID();
  private readonly bootedAt: number;
  /** Open event streams by exec id. */
  private readonly streams = new Map<string, Set<ServerResponse>>();
  private liveExecs = new Set<string>();
  /** When frozen, the server accepts and reads but never answers: a container that died without a RST. */
  private frozen = false;
  /** The workspace's files, by path. */
  private readonly files = new Map<string, string>();
  /** Signed request ids acted on. */
  private readonly requests = new Set<string>();
  /** Answers that replace the usual ones, by route (`GET /v1/status`): a runnerd the session has subverted. */
  private readonly answers = new Map<string, RouteAnswer>();

  constructor(
    private readonly tokenSha256: string,
    private readonly clock: Clock,
    answers: Readonly<Record<string, RouteAnswer>> = {},
  ) {
    this.bootedAt = clock.now();
    this.lastActivityAt = this.bootedAt;
    for (const [route, answer] of Object.entries(answers)) this.answers.set(route, answer);
    this.server = createServer((req, res) => this.handle(req, res));
    this.server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    const address = this.server.address();
    if (address === null || typeof address === "string") throw new Error("fake runnerd has no port");
    return address.port;
  }

  /** The session env as runnerd would hold it (for tests). */
  envNames(): string[] {
    return [...this.env.keys()].sort();
  }

  /** Ends a running exec: its streams get an exit event and close. */
  finishExec(execId: string, exitCode = 0): void {
    this.liveExecs.delete(execId);
    for (const res of this.streams.get(execId) ?? []) {
      res.end(
        encodeSseEvent({
          seq: 2,
          type: "exit",
          data: {
            exitCode,
            signal: null,
            outcome: exitCode === 0 ? "completed" : "failed",
            durationMs: 1,
            truncated: false,
          },
        }),
      );
    }
    this.streams.delete(execId);
  }

  /** From now on answers `route` (`GET /v1/status`) with `answer`, as a runnerd the session subverted might. */
  answer(route: string, answer: RouteAnswer): void {
    this.answers.set(route, answer);
  }

  /** Stops answering without closing anything, as a host that vanished. */
  freeze(): void {
    // Connections are still taken (as a vanished host's SYN goes unanswered, not refused), never answered.
    this.frozen = true;
  }

  /** Closes every connection and the server, as a process that exited; `listen` starts it again, state kept. */
  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private authorized(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? "";
    return header.startsWith("Bearer ") && sha256Hex(header.slice("Bearer ".length)) === this.tokenSha256;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (this.frozen) return;
    const body = await readBody(req);
    if (!this.authorized(req)) return json(res, 401, { error: { code: "UNAUTHORIZED", message: "bad token" } });
    const url = new URL(req.url ?? "/", "http://runnerd");
    const route = `${req.method} ${url.pathname}`;
    const answer = this.answers.get(route);
    if (answer) return answer(res);
    // As runnerd: a signed request passed on is acted on once.
    const requestId = req.headers[REQUEST_ID_HEADER];
    if (typeof requestId === "string" && req.method !== "GET") {
      if (this.requests.has(requestId)) {
        return json(res, 401, { error: { code: "NONCE_REPLAYED", message: "already acted on" } });
      }
      this.requests.add(requestId);
    }
    if (route === "POST /v1/requests") {
      res.writeHead(204).end();
      return;
    }
    if (route === "GET /v1/status") {
      return json(res, 200, {
        version: "fake",
        incarnation: this.incarnation,
        bootedAt: this.bootedAt,
        lastActivityAt: this.lastActivityAt,
        liveExecs: this.liveExecs.size,
      });
    }
    this.lastActivityAt = this.clock.now();
    if (route === "GET /v1/env") return json(res, 200, { names: this.envNames() });
    // Files kept in memory, as a workspace on a volume: they outlive a stop of this runnerd.
    if (route === "PUT /v1/files/content") {
      const path = url.searchParams.get("path") ?? "";
      this.files.set(path, body);
      return json(res, 200, { path, size: Buffer.byteLength(body) });
    }
    if (route === "GET /v1/files/content") {
      const file = this.files.get(url.searchParams.get("path") ?? "");
      if (file === undefined) return json(res, 404, { error: { code: "FILE_NOT_FOUND", message: "no such file" } });
      res.writeHead(200, { "content-type": "application/octet-stream" });
      res.end(file);
      return;
    }
    if (route === "GET /v1/execs") {
      return json(res, 200, { execs: [...this.liveExecs].map((execId) => ({ execId, state: "running" })) });
    }
    if (route === "PATCH /v1/env") {
      const patch: { set?: Record<string, string>; unset?: string[] } = JSON.parse(body);
      for (const [name, value] of Object.entries(patch.set ?? {})) this.env.set(name, value);
      for (const name of patch.unset ?? []) this.env.delete(name);
      return json(res, 200, { names: this.envNames(), denied: [] });
    }
    if (route === "POST /v1/execs") {
      const request: { execId?: string } = JSON.parse(body);
      const execId = request.execId ?? randomUUID();
      this.liveExecs.add(execId);
      return this.stream(execId, res, true);
    }
    const events = url.pathname.match(/^\/v1\/execs\/([^/]+)\/events$/);
    if (req.method === "GET" && events?.[1] !== undefined) {
      if (!this.liveExecs.has(events[1])) {
        return json(res, 404, { error: { code: "EXEC_NOT_FOUND", message: `no exec ${events[1]}` } });
      }
      return this.stream(events[1], res, false);
    }
    return json(res, 404, { error: { code: "NOT_FOUND", message: `no route ${route}` } });
  }

  private stream(execId: string, res: ServerResponse, started: boolean): void {
    res.writeHead(200, { "content-type": "text/event-stream", "x-exec-id": execId });
    if (started)
      res.write(encodeSseEvent({ seq: 1, type: "started", data: { execId, pid: 4242, startedAt: this.clock.now() } }));
    else res.write(SSE_HEARTBEAT);
    let open = this.streams.get(execId);
    if (!open) {
      open = new Set();
      this.streams.set(execId, open);
    }
    open.add(res);
    res.on("close", () => open.delete(res));
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}
