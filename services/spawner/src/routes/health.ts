import { OpenAPIHono } from "@hono/zod-openapi";
import { z } from "zod";
import type { SpawnerEnv } from "../auth/signature-auth.js";
import type { SessionBackend } from "../backends/backend.js";
import type { Metrics } from "../metrics.js";
import { errorResponses, json, media, mount } from "./api-route.js";

/**
 * The paths anyone may call, unsigned: liveness, readiness, Prometheus
 * metrics and the API description. Every other path needs a signature.
 */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set(["/healthz", "/readyz", "/metrics", "/openapi.json"]);

/** Liveness, readiness (the backend answers) and Prometheus metrics. */
export function healthRoutes(backend: SessionBackend, metrics: Metrics): OpenAPIHono<SpawnerEnv> {
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
  mount(
    app,
    {
      method: "get",
      path: "/metrics",
      summary: "Prometheus metrics of this replica",
      security: [],
      responses: { 200: media("text/plain", "Prometheus text format") },
    },
    async (c) => c.text(await metrics.registry.metrics(), 200, { "Content-Type": metrics.registry.contentType }),
  );
  return app;
}
