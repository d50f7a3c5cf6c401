import type { RunnerdStatus } from "@sbx/protocol";
import { Hono } from "hono";

export function healthRoutes(): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "ok" as const }));
  return app;
}

/**
 * What runnerd tells of itself: its activity clock and live execs. It keeps no lease: a
 * session's lifetime is the spawner's, held where the session cannot write.
 */
export function statusRoutes(status: () => RunnerdStatus): Hono {
  const app = new Hono();
  app.get("/", (c) => c.json(status()));
  return app;
}
