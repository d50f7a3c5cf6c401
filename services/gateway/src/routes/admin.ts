import { errorResponse, type Logger } from "@sbx/edge";
import { ApiError } from "@sbx/protocol";
import { Hono } from "hono";
import type { Metrics } from "../metrics.js";

/**
 * Health, readiness and Prometheus metrics, on the admin listener: operators and probes reach
 * it, sessions never (they reach only the proxy port).
 */
export function adminApp(metrics: Metrics, ready: () => boolean, log: Logger): Hono {
  const app = new Hono();
  app.onError((error, c) => errorResponse(c, error, log, "gateway"));
  app.notFound((c) =>
    errorResponse(
      c,
      new ApiError("NOT_FOUND", `no route ${c.req.method} ${c.req.path} (admin listener)`),
      log,
      "gateway",
    ),
  );
  app.get("/healthz", (c) => c.json({ status: "ok" as const }));
  app.get("/readyz", (c) =>
    ready() ? c.json({ status: "ready" as const }) : c.json({ status: "starting" as const }, 503),
  );
  app.get("/metrics", async (c) =>
    c.text(await metrics.registry.metrics(), 200, { "Content-Type": metrics.registry.contentType }),
  );
  return app;
}
