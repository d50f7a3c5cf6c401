import { createHash } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { ApiError, REQUEST_ID_HEADER, UNSIGNED_PAYLOAD } from "@sbx/protocol";
import type { Endpoint } from "../backends/backend.js";

/** Request headers passed on to runnerd; everything else (auth, signatures, hop-by-hop) stays here. */
const FORWARDED_REQUEST_HEADERS = ["content-type", "content-length", "last-event-id", "accept"] as const;
/**
 * Response headers passed back to the caller: the ones runnerd's routes answer with. runnerd runs
 * as the session's uid, so anything else it might send (cookies, redirects, CORS grants, its own
 * auth realm) is the session's word and stays here; connection management is per hop anyway.
 */
const FORWARDED_RESPONSE_HEADERS: ReadonlySet<string> = new Set([
  "content-type",
  "content-length",
  "last-modified",
  "cache-control",
  "x-accel-buffering",
  "x-exec-id",
  "retry-after",
]);

export interface ProxyRequest {
  /** The session the call is for: its streams are ended at once when it is lost (`cut`). */
  sessionId: string;
  incoming: IncomingMessage;
  outgoing: ServerResponse;
  endpoint: Endpoint;
  token: string;
  /** The signed request's id: runnerd acts on a mutating request with it once, whichever replica passed it on. */
  requestId: string | undefined;
  /** Path and query on runnerd, e.g. `/v1/execs?wait=true`. */
  path: string;
  /** The body when it was already read (and its hash checked); otherwise it is streamed from `incoming`. */
  body: Buffer | undefined;
  /** For a streamed body: the sha256 the signature covers, checked before the upload is completed. */
  expectedSha256: string | undefined;
  onBytes(direction: "up" | "down", bytes: number): void;
  /** Called when runnerd cannot be reached before any response byte was sent; returns the error to answer with. */
  explainUnreachable(error: unknown): Promise<ApiError>;
  sendError(error: ApiError): void;
}

/**
 * One session call passed to its runnerd byte for byte: no buffering or
 * re-encoding of event streams or files, and when the caller goes away the
 * upstream request is aborted (an exec keeps running in runnerd regardless).
 */
export class RunnerdProxy {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 512, keepAliveMsecs: 30_000 });
  /** Calls in flight by session id: what `cut` ends. */
  private readonly live = new Map<string, Set<() => void>>();
  /** The last address each session was reached at. */
  private readonly endpoints = new Map<string, Endpoint>();

  constructor(private readonly connectTimeoutMs: number) {}

  /**
   * Ends every call in flight to a session that died or went away: a dead
   * container's address often never answers again (no reset), so waiting
   * for the socket would hang the client for minutes.
   */
  cut(sessionId: string): number {
    // Kept-alive idle connections to its address are as dead as the rest, and the address may
    // soon belong to another session.
    const endpoint = this.endpoints.get(sessionId);
    this.endpoints.delete(sessionId);
    if (endpoint) {
      for (const socket of this.agent.freeSockets[this.agent.getName(endpoint)] ?? []) socket.destroy();
    }
    const calls = this.live.get(sessionId);
    if (!calls) return 0;
    this.live.delete(sessionId);
    for (const end of calls) end();
    return calls.size;
  }

  forward(request: ProxyRequest): Promise<void> {
    const { incoming, outgoing } = request;
    const headers: Record<string, string | string[]> = { authorization: `Bearer ${request.token}` };
    for (const name of FORWARDED_REQUEST_HEADERS) {
      const value = incoming.headers[name];
      if (value !== undefined) headers[name] = value;
    }
    if (request.requestId !== undefined && incoming.method !== "GET" && incoming.method !== "HEAD") {
      headers[REQUEST_ID_HEADER] = request.requestId;
    }
    if (request.body !== undefined) headers["content-length"] = String(request.body.length);
    else if (request.expectedSha256 !== undefined && request.expectedSha256 !== UNSIGNED_PAYLOAD) {
      // Chunked instead: runnerd must not see the body as complete before its hash is checked,
      // and a chunked body only ends with the final chunk, sent after the check.
      delete headers["content-length"];
    }

    return new Promise<void>((resolve) => {
      let settled = false;
      /** Set when we refused the body ourselves: the upstream error that follows is expected. */
      let refused = false;
      this.endpoints.set(request.sessionId, request.endpoint);
      let calls = this.live.get(request.sessionId);
      if (!calls) {
        calls = new Set();
        this.live.set(request.sessionId, calls);
      }
      const tracked = calls;
      const done = () => {
        if (!settled) {
          settled = true;
          tracked.delete(end);
          if (tracked.size === 0 && this.live.get(request.sessionId) === tracked) this.live.delete(request.sessionId);
          resolve();
        }
      };
      const upstream = http.request(
        {
          host: request.endpoint.host,
          port: request.endpoint.port,
          method: incoming.method,
          path: request.path,
          headers,
          agent: this.agent,
        },
        (response) => {
          const passed: http.OutgoingHttpHeaders = {};
          for (const [name, value] of Object.entries(response.headers)) {
            if (value !== undefined && FORWARDED_RESPONSE_HEADERS.has(name)) passed[name] = value;
          }
          outgoing.writeHead(response.statusCode ?? 502, passed);
          // Event streams must reach the client as they happen; a sized body goes out with its head.
          if (response.headers["content-length"] === undefined) outgoing.flushHeaders();
          response.on("data", (chunk: Buffer) => {
            request.onBytes("down", chunk.length);
            if (!outgoing.write(chunk)) {
              response.pause();
              outgoing.once("drain", () => response.resume());
            }
          });
          response.on("end", () => {
            outgoing.end();
            done();
          });
          response.on("error", () => {
            // runnerd went away mid-response: the client must see a broken stream, not a clean end.
            outgoing.destroy();
            done();
          });
        },
      );
      // Ends the call from outside (`cut`): before any answer the client gets the backend's
      // explanation; mid-answer the connection closes, as the upstream's would have.
      const end = () => upstream.destroy(new Error("the session is no longer reachable"));
      tracked.add(end);
      upstream.on("socket", (socket) => {
        if (!socket.connecting) return;
        const timer = setTimeout(
          () => upstream.destroy(new Error(`connect timed out after ${this.connectTimeoutMs} ms`)),
          this.connectTimeoutMs,
        );
        socket.once("connect", () => clearTimeout(timer));
        socket.once("close", () => clearTimeout(timer));
      });
      upstream.on("error", (error) => {
        if (refused) {
          done();
          return;
        }
        if (outgoing.headersSent) {
          outgoing.destroy();
          done();
          return;
        }
        void request.explainUnreachable(error).then((apiError) => {
          request.sendError(apiError);
          done();
        });
      });
      // The caller went away: stop the upstream request too.
      outgoing.on("close", () => {
        if (!outgoing.writableFinished) upstream.destroy();
        done();
      });

      if (request.body !== undefined) {
        request.onBytes("up", request.body.length);
        upstream.end(request.body);
        return;
      }
      this.streamBody(request, upstream, (error) => {
        refused = true;
        request.sendError(error);
      });
    });
  }

  /** Streams the caller's body upstream; with a declared hash, the upload is only completed if it matches. */
  private streamBody(request: ProxyRequest, upstream: http.ClientRequest, refuse: (error: ApiError) => void): void {
    const hash =
      request.expectedSha256 && request.expectedSha256 !== UNSIGNED_PAYLOAD ? createHash("sha256") : undefined;
    request.incoming.on("data", (chunk: Buffer) => {
      request.onBytes("up", chunk.length);
      hash?.update(chunk);
      if (!upstream.write(chunk)) {
        request.incoming.pause();
        upstream.once("drain", () => request.incoming.resume());
      }
    });
    request.incoming.on("end", () => {
      if (hash && hash.digest("hex") !== request.expectedSha256) {
        // Aborting before the end makes runnerd discard the partial upload: nothing is written.
        refuse(new ApiError("CONTENT_HASH_MISMATCH", "body does not match x-sandbox-content-sha256"));
        upstream.destroy();
        return;
      }
      upstream.end();
    });
    request.incoming.on("error", () => upstream.destroy());
  }

  close(): void {
    this.agent.destroy();
  }
}
