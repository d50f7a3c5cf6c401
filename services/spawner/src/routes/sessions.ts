import { jsonBody, param } from "@sbx/edge";
import {
  CreateSessionRequestSchema,
  PatchSessionRequestSchema,
  parseOrThrow,
  SessionIdSchema,
  SessionListQuerySchema,
} from "@sbx/protocol";
import { Hono } from "hono";
import type { SpawnerEnv } from "../auth/signature-auth.js";
import type { SessionService } from "../sessions/session-service.js";

/** The session resource itself: create, read, list, change lifetime, delete. */
export function sessionRoutes(sessions: SessionService): Hono<SpawnerEnv> {
  const app = new Hono<SpawnerEnv>();

  app.post("/", async (c) => {
    const request = await jsonBody(c, CreateSessionRequestSchema, "session request");
    const { session, created } = await sessions.create(request);
    return c.json({ session }, created ? 201 : 200);
  });

  app.get("/", async (c) => {
    // `label` may repeat: collect every value rather than the last.
    const raw = { ...c.req.query(), ...(c.req.queries("label") ? { label: c.req.queries("label") } : {}) };
    return c.json({ sessions: await sessions.list(parseOrThrow(SessionListQuerySchema, raw, "query")) });
  });

  app.get("/:id", async (c) => c.json({ session: await sessions.get(param(c, "id", SessionIdSchema)) }));

  app.patch("/:id", async (c) => {
    const id = param(c, "id", SessionIdSchema);
    const request = await jsonBody(c, PatchSessionRequestSchema, "session patch");
    return c.json({ session: await sessions.patch(id, request) });
  });

  app.delete("/:id", async (c) => {
    await sessions.delete(param(c, "id", SessionIdSchema));
    return c.body(null, 204);
  });

  return app;
}
