import {
  type CreateSessionRequest,
  type PatchSessionRequest,
  type Session,
  SessionListResponseSchema,
  SessionResponseSchema,
} from "@sbx/protocol";
import { SessionHandle } from "./session.js";
import { type ClientOptions, queryString, Transport } from "./transport.js";

/**
 * The sbx session API, signed. Sessions are created, listed and deleted
 * here; everything inside one goes through `client.session(id)`.
 *
 *   const client = new SandboxClient({ baseUrl: "http://127.0.0.1:8080", secret });
 *   const session = await client.createSession({ org: "acme" });
 *   const result = await client.session(session.id).run({ shell: "npm test" });
 */
export class SandboxClient {
  private readonly transport: Transport;

  constructor(options: ClientOptions) {
    this.transport = new Transport(options);
  }

  /** Creates a session and returns it ready. Repeating the same create (same id, same spec) returns the same session. */
  async createSession(request: CreateSessionRequest, options: { signal?: AbortSignal } = {}): Promise<Session> {
    const response = await this.transport.json("POST", "/v1/sessions", SessionResponseSchema, {
      body: { json: request },
      signal: options.signal,
    });
    return response.session;
  }

  getSession(id: string): Promise<Session> {
    return this.session(id).get();
  }

  /** Sessions, filtered by org, owner and `labels` (a session must carry every one). */
  async listSessions(
    filter: { org?: string; owner?: string; labels?: Record<string, string> } = {},
  ): Promise<Session[]> {
    const label = Object.entries(filter.labels ?? {}).map(([k, v]) => `${k}=${v}`);
    const path = `/v1/sessions${queryString({ org: filter.org, owner: filter.owner, label })}`;
    return (await this.transport.json("GET", path, SessionListResponseSchema)).sessions;
  }

  updateSession(id: string, patch: PatchSessionRequest): Promise<Session> {
    return this.session(id).update(patch);
  }

  stopSession(id: string): Promise<Session> {
    return this.session(id).stop();
  }

  resumeSession(id: string): Promise<Session> {
    return this.session(id).resume();
  }

  deleteSession(id: string): Promise<void> {
    return this.session(id).delete();
  }

  /** A handle on one session (no request is made until you use it). */
  session(id: string): SessionHandle {
    return new SessionHandle(this.transport, id);
  }
}
