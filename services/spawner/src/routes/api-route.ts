import type { OpenAPIHono, RouteConfig } from "@hono/zod-openapi";
import { ERROR_STATUS, ErrorEnvelopeSchema } from "@sbx/protocol";
import type { Env, Handler } from "hono";
import type { z } from "zod";

/**
 * Mounts a handler and documents it from one definition: the path, method,
 * parameters and bodies that /openapi.json shows are the ones the app
 * serves. Inputs are parsed by the handlers with the protocol's schemas
 * (so every refusal is our error envelope); the definition describes them.
 */
export function mount<E extends Env>(app: OpenAPIHono<E>, route: RouteConfig, handler: Handler<E>): void {
  app.openAPIRegistry.registerPath(route);
  app.on(route.method.toUpperCase(), route.path.replaceAll(/\{(\w+)\}/g, ":$1"), handler);
}

/** A JSON body or answer described by a protocol schema. */
export function json(schema: z.ZodType, description: string) {
  return { description, content: { "application/json": { schema } } };
}

/** A body or answer that is not JSON (event streams, files, tar). */
export function media(type: string, description: string) {
  return { description, content: { [type]: { schema: { type: "string" as const, format: "binary" } } } };
}

/** The error envelope, under every status our error codes can travel with. */
export function errorResponses(): RouteConfig["responses"] {
  const responses: RouteConfig["responses"] = {};
  for (const status of [...new Set(Object.values(ERROR_STATUS))].sort()) {
    const codes = Object.entries(ERROR_STATUS)
      .filter(([, s]) => s === status)
      .map(([code]) => code);
    responses[status] = json(ErrorEnvelopeSchema, `error envelope: ${codes.join(", ")}`);
  }
  return responses;
}
