import { OpenAPIHono } from "@hono/zod-openapi";
import { z } from "zod";
import type { SpawnerEnv } from "../auth/signature-auth.js";
import type { SessionBackend } from "../backends/backend.js";
import { errorResponses, json, mount } from "./api-route.js";

/**
 * The paths anyone may call, unsigned: liveness, readiness and the API
 * description. Every other path needs a signature. (Metrics have a listener
 * of their own: routes/metrics.ts.)
 */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set(["/healthz", "/readyz", "/openapi.json"]);

/** Liveness and readiness (the backend answers). */
export function healthRoutes(backend: SessionBackend): OpenAPIHono<SpawnerEnv> {
  const app = new OpenAPIHono<SpawnerEnv>();
  mount(
    app,
    {
      method: "get",
      path: "/healthz",
      summary: "Liveness: the process serves requests",
      security: [],
      responses: { 200: json(z.object({ status: z.literal("ok") }), "alive") },
    },
    (c) => c.json({ status: "ok" }),
  );
  mount(
    app,
    {
      method: "get",
      path: "/readyz",
      summary: "Readiness: the backend (Docker engine, Kubernetes API) answers",
      security: [],
      responses: {
        200: json(z.object({ status: z.literal("ready"), backend: z.string() }), "ready"),
        ...errorResponses(),
      },
    },
    async (c) => {
      await backend.ping();
      return c.json({ status: "ready", backend: backend.kind });
    },
  );
  return app;
}
