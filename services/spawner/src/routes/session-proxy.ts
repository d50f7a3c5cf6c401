import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { param } from "@sbx/edge";
import { type ApiError, SessionIdSchema } from "@sbx/protocol";
import { type Context, Hono } from "hono";
import type { SpawnerEnv } from "../auth/signature-auth.js";
import type { Metrics } from "../metrics.js";
import type { RunnerdProxy } from "../proxy/runnerd-proxy.js";
import type { SessionService } from "../sessions/session-service.js";

/**
 * Everything runnerd serves, under the session: `/v1/sessions/:id/execs…`,
 * `/env`, `/files…` map one to one onto runnerd's `/v1/execs…`, `/v1/env`,
 * `/v1/files…`, with the same bodies, events and statuses.
 */
export function sessionProxyRoutes(sessions: SessionService, proxy: RunnerdProxy, metrics: Metrics): Hono<SpawnerEnv> {
  const app = new Hono<SpawnerEnv>();

  const forward = async (c: Context<SpawnerEnv>) => {
    const id = param(c, "id", SessionIdSchema);
    const target = await sessions.target(id);
    const raw = c.env.incoming.url ?? c.req.path;
    const prefix = `/v1/sessions/${id}`;
    const upstreamPath = `/v1${raw.slice(prefix.length)}`;
    if (c.req.method === "POST" && /^\/v1\/execs(\?|$)/.test(upstreamPath)) metrics.execsStarted.inc();
    const { outgoing } = c.env;
    const sendError = (error: ApiError) => {
      if (outgoing.headersSent) {
        outgoing.destroy();
        return;
      }
      const body = JSON.stringify(error.toEnvelope());
      outgoing.writeHead(error.status, {
        ...error.headers,
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
      });
      outgoing.end(body);
    };
    await proxy.forward({
      incoming: c.env.incoming,
      outgoing,
      endpoint: target.endpoint,
      token: target.token,
      path: upstreamPath,
      body: c.get("body"),
      expectedSha256: c.get("expectedSha256"),
      onBytes: (direction, bytes) => metrics.proxiedBytes.inc({ direction }, bytes),
      explainUnreachable: (error) => sessions.explainUnreachable(id, error),
      sendError,
    });
    return RESPONSE_ALREADY_SENT;
  };

  for (const area of ["execs", "env", "files"]) {
    app.all(`/:id/${area}`, forward);
    app.all(`/:id/${area}/*`, forward);
  }
  return app;
}
