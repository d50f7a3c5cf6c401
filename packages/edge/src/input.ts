import { ApiError, parseOrThrow } from "@sbx/protocol";
import type { Context } from "hono";
import type { z } from "zod";

/** Parses a JSON body (an empty body counts as `{}`) against `schema`. */
export async function jsonBody<S extends z.ZodType>(c: Context, schema: S, what: string): Promise<z.output<S>> {
  const text = await c.req.text();
  let raw: unknown = {};
  if (text.trim() !== "") {
    try {
      raw = JSON.parse(text);
    } catch (cause) {
      throw new ApiError("INVALID_JSON", `${what}: request body is not valid JSON`, { cause });
    }
  }
  return parseOrThrow(schema, raw, what);
}

/** Parses the query string against `schema` (unknown parameters are refused). */
export function query<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  return parseOrThrow(schema, c.req.query(), "query");
}

export function param<S extends z.ZodType>(c: Context, name: string, schema: S): z.output<S> {
  return parseOrThrow(schema, c.req.param(name), name);
}
