import { errorResponse, type Logger } from "@sbx/edge";
import { ApiError } from "@sbx/protocol";
import { Hono } from "hono";
import type { Metrics } from "../metrics.js";

/**
 * Prometheus metrics, on a listener of their own (SPAWNER_METRICS_HOST and
 * _PORT): an operator puts it where Prometheus scrapes and nothing else
 * reaches, sessions least of all.
 */
export function metricsApp(metrics: Metrics, log: Logger): Hono {
  const app = new Hono();
  app.onError((error, c) => errorResponse(c, error, log, "spawner"));
  app.notFound((c) =>
    errorResponse(
      c,
      new ApiError("NOT_FOUND", `no route ${c.req.method} ${c.req.path} (metrics listener)`),
      log,
      "spawner",
    ),
  );
  app.get("/metrics", async (c) =>
    c.text(await metrics.registry.metrics(), 200, { "Content-Type": metrics.registry.contentType }),
  );
  return app;
}
