import { jsonBody } from "@sbx/edge";
import { type Lease, LeaseSchema, type RunnerdStatus } from "@sbx/protocol";
import { Hono } from "hono";

export interface StatusSource {
  status(): RunnerdStatus;
  setLease(lease: Lease): void;
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

/** The session lifetime the spawner last set; runnerd only keeps it, the spawner enforces it. */
export function leaseRoutes(source: StatusSource): Hono {
  const app = new Hono();
  app.put("/", async (c) => {
    const lease = await jsonBody(c, LeaseSchema, "lease");
    source.setLease(lease);
    return c.json({ lease });
  });
  return app;
}
