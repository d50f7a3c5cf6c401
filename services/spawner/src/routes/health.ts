import { Hono } from "hono";
import type { SpawnerEnv } from "../auth/signature-auth.js";
import type { SessionBackend } from "../backends/backend.js";
import type { Metrics } from "../metrics.js";

/** Unauthenticated: liveness, readiness (the backend answers) and Prometheus metrics. */
export function healthRoutes(backend: SessionBackend, metrics: Metrics): Hono<SpawnerEnv> {
  const app = new Hono<SpawnerEnv>();
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.get("/readyz", async (c) => {
    await backend.ping();
    return c.json({ status: "ready", backend: backend.kind });
  });
  app.get("/metrics", async (c) =>
    c.text(await metrics.registry.metrics(), 200, { "Content-Type": metrics.registry.contentType }),
  );
  return app;
}
