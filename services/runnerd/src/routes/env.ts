import type { Logger } from "@sbx/edge";
import { jsonBody } from "@sbx/edge";
import { EnvPatchRequestSchema } from "@sbx/protocol";
import { Hono } from "hono";
import type { EnvStore } from "../env/env-store.js";

/** Session-wide exec environment. Values go in, names come out; values are never returned or logged. */
export function envRoutes(store: EnvStore, log: Logger): Hono {
  const app = new Hono();
  app.get("/", (c) => c.json({ names: store.names() }));
  app.patch("/", async (c) => {
    const request = await jsonBody(c, EnvPatchRequestSchema, "env patch");
    const result = store.patch(request.set ?? {}, request.unset ?? []);
    log.info({ set: Object.keys(request.set ?? {}), unset: request.unset ?? [], denied: result.denied }, "env patched");
    return c.json(result);
  });
  return app;
}
