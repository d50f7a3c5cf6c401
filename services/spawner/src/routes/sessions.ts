import { OpenAPIHono } from "@hono/zod-openapi";
import { jsonBody, param } from "@sbx/edge";
import {
  CreateSessionRequestSchema,
  PatchSessionRequestSchema,
  parseOrThrow,
  SessionIdSchema,
  SessionListQuerySchema,
  SessionListResponseSchema,
  SessionResponseSchema,
} from "@sbx/protocol";
import { z } from "zod";
import type { SpawnerEnv } from "../auth/signature-auth.js";
import type { SessionService } from "../sessions/session-service.js";
import { errorResponses, json, mount } from "./api-route.js";

export const SessionPathSchema = z.object({ id: SessionIdSchema });

/** The session resource itself: create, read, list, change lifetime, delete. */
export function sessionRoutes(sessions: SessionService): OpenAPIHono<SpawnerEnv> {
  const app = new OpenAPIHono<SpawnerEnv>();
  const errors = errorResponses();

  mount(
    app,
    {
      method: "post",
      path: "/v1/sessions",
      summary: "Create a session (idempotent per id and spec)",
      request: { body: { content: { "application/json": { schema: CreateSessionRequestSchema } }, required: true } },
      responses: {
        201: json(SessionResponseSchema, "created"),
        200: json(SessionResponseSchema, "it existed with the same spec"),
        ...errors,
      },
    },
    async (c) => {
      const request = await jsonBody(c, CreateSessionRequestSchema, "session request");
      const { session, created } = await sessions.create(request, c.get("signed"));
      return c.json({ session }, created ? 201 : 200);
    },
  );

  mount(
    app,
    {
      method: "get",
      path: "/v1/sessions",
      summary: "List sessions (?org=&owner=&label=key=value, label repeatable)",
      request: { query: SessionListQuerySchema },
      responses: { 200: json(SessionListResponseSchema, "the sessions"), ...errors },
    },
    async (c) => {
      // `label` may repeat: collect every value rather than the last.
      const raw = { ...c.req.query(), ...(c.req.queries("label") ? { label: c.req.queries("label") } : {}) };
      return c.json({ sessions: await sessions.list(parseOrThrow(SessionListQuerySchema, raw, "query")) });
    },
  );

  mount(
    app,
    {
      method: "get",
      path: "/v1/sessions/{id}",
      summary: "Get a session (state, reason when failed, lifetimes, last activity)",
      request: { params: SessionPathSchema },
      responses: { 200: json(SessionResponseSchema, "the session"), ...errors },
    },
    async (c) => c.json({ session: await sessions.get(param(c, "id", SessionIdSchema)) }),
  );

  mount(
    app,
    {
      method: "patch",
      path: "/v1/sessions/{id}",
      summary: "Change a session's lifetime",
      request: {
        params: SessionPathSchema,
        body: { content: { "application/json": { schema: PatchSessionRequestSchema } }, required: true },
      },
      responses: { 200: json(SessionResponseSchema, "the session"), ...errors },
    },
    async (c) => {
      const id = param(c, "id", SessionIdSchema);
      const request = await jsonBody(c, PatchSessionRequestSchema, "session patch");
      return c.json({ session: await sessions.patch(id, request, c.get("signed")) });
    },
  );

  mount(
    app,
    {
      method: "delete",
      path: "/v1/sessions/{id}",
      summary: "Delete a session and its workspace (gone, or going)",
      request: { params: SessionPathSchema },
      responses: { 204: { description: "deleted" }, ...errors },
    },
    async (c) => {
      await sessions.delete(param(c, "id", SessionIdSchema));
      return c.body(null, 204);
    },
  );

  for (const [action, summary] of [
    ["stop", "Stop a session, keeping its workspace, env and exec records (running execs end interrupted); idempotent"],
    ["resume", "Start a stopped session again (calls to a stopped session also resume it); idempotent"],
  ] as const) {
    mount(
      app,
      {
        method: "post",
        path: `/v1/sessions/{id}/${action}`,
        summary,
        request: { params: SessionPathSchema },
        responses: { 200: json(SessionResponseSchema, "the session"), ...errors },
      },
      async (c) => {
        const id = param(c, "id", SessionIdSchema);
        const signed = c.get("signed");
        return c.json({ session: await (action === "stop" ? sessions.stop(id, signed) : sessions.resume(id)) });
      },
    );
  }

  return app;
}
