import type { RunnerdStatus } from "@sbx/protocol";
import { Hono } from "hono";

export interface StatusSource {
  status(): RunnerdStatus;
}

export function healthRoutes(): Hono {
  const app = new Hono();
  app.get("/healthz", (c) => c.json({ status: "ok" as const }));
  return app;
}

export function statusRoutes(source: StatusSource): Hono {
  const app = new Hono();
  app.get("/", (c) => c.json(source.status()));
  return app;
}
