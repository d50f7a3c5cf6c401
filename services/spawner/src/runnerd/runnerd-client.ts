import {
  ApiError,
  type EnvPatchRequest,
  EnvPatchResponseSchema,
  ErrorEnvelopeSchema,
  fieldIssues,
  REQUEST_ID_HEADER,
  type RunnerdStatus,
  RunnerdStatusSchema,
} from "@sbx/protocol";
import { z } from "zod";
import type { Endpoint } from "../backends/backend.js";

/** Control calls from the spawner to one session's runnerd (status, env), with timeouts. */
export class RunnerdClient {
  constructor(
    private readonly endpoint: Endpoint,
    private readonly token: string,
  ) {}

  /** `until`: ends the call early (the session was lost meanwhile). */
  status(timeoutMs: number, until?: AbortSignal): Promise<RunnerdStatus> {
    return this.call("GET", "/v1/status", undefined, RunnerdStatusSchema, timeoutMs, until);
  }

  /** Has runnerd remember a signed request the spawner acts on; NONCE_REPLAYED when it already did. */
  async recordRequest(requestId: string, timeoutMs: number): Promise<void> {
    await this.call("POST", "/v1/requests", undefined, z.undefined(), timeoutMs, undefined, {
      [REQUEST_ID_HEADER]: requestId,
    });
  }

  patchEnv(patch: EnvPatchRequest, timeoutMs: number): Promise<z.infer<typeof EnvPatchResponseSchema>> {
    return this.call("PATCH", "/v1/env", patch, EnvPatchResponseSchema, timeoutMs);
  }

  /**
   * Runs once what a session's first moments use (env, an exec streamed and one waited
   * for), so that a warm pool member answers its claim at full speed: a fresh runnerd compiles
   * each path the first time it runs it. Leaves no trace (the execs' records are removed).
   */
  async warmUp(timeoutMs: number): Promise<void> {
    const signal = AbortSignal.timeout(timeoutMs);
    const base = `http://${this.endpoint.host}:${this.endpoint.port}`;
    const headers = { authorization: `Bearer ${this.token}`, "content-type": "application/json" };
    await this.patchEnv({ set: {} }, timeoutMs);
    for (const [execId, query] of [
      ["sbx-warm-up-stream", ""],
      ["sbx-warm-up-wait", "?wait=true"],
    ] as const) {
      const response = await fetch(`${base}/v1/execs${query}`, {
        method: "POST",
        headers,
        body: JSON.stringify({ execId, argv: ["true"] }),
        signal,
      });
      await boundedText(response, MAX_CONTROL_REPLY_BYTES, "a warm-up exec");
      if (!response.ok) throw new Error(`runnerd answered a warm-up exec with ${response.status}`);
      const forget = await fetch(`${base}/v1/execs/${execId}`, { method: "DELETE", headers, signal });
      await boundedText(forget, MAX_CONTROL_REPLY_BYTES, "a warm-up exec's removal");
    }
  }

  private async call<S extends z.ZodType>(
    method: string,
    path: string,
    body: unknown,
    schema: S,
    timeoutMs: number,
    until?: AbortSignal,
    extraHeaders: Record<string, string> = {},
  ): Promise<z.output<S>> {
    const what = `${method} ${path}`;
    // One deadline for the whole call, the answer's body included: a runnerd that answers its
    // headers and then trickles (or never ends) its body is as late as one that never answers.
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = until ? AbortSignal.any([timeout, until]) : timeout;
    let response: Response;
    try {
      response = await fetch(`http://${this.endpoint.host}:${this.endpoint.port}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json", ...extraHeaders },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal,
      });
    } catch (error) {
      throw new ApiError("RUNNERD_UNREACHABLE", `runnerd did not answer ${what}: ${reason(error)}`, {
        cause: error,
      });
    }
    const text = await boundedText(response, MAX_CONTROL_REPLY_BYTES, what);
    if (!response.ok) {
      const envelope = ErrorEnvelopeSchema.safeParse(parseJson(text));
      if (envelope.success && envelope.data.error.code === "NONCE_REPLAYED") {
        throw new ApiError("NONCE_REPLAYED", "this signed request was already acted on; sign every request anew");
      }
      throw new ApiError(
        "RUNNERD_UNREACHABLE",
        `runnerd answered ${what} with ${response.status}${envelope.success ? `: ${envelope.data.error.message.slice(0, 500)}` : ""}`,
      );
    }
    const parsed = schema.safeParse(parseJson(text));
    if (!parsed.success) {
      throw new ApiError("RUNNERD_BAD_REPLY", `runnerd answered ${what} with something that is not the expected JSON`, {
        details: {
          issues: fieldIssues(parsed.error).slice(0, 5),
        },
      });
    }
    return parsed.data;
  }
}

/**
 * The most a control answer of runnerd (status, env) may weigh. runnerd runs as the session's uid,
 * so its answers are the session's to shape: nothing it sends is read past this.
 */
export const MAX_CONTROL_REPLY_BYTES = 64 * 1024;

/** The body as text, or RUNNERD_BAD_REPLY once it passes `limit` bytes (read no further). */
async function boundedText(response: Response, limit: number, what: string): Promise<string> {
  const tooLarge = () =>
    new ApiError("RUNNERD_BAD_REPLY", `runnerd answered ${what} with more than ${limit} bytes`, {
      details: { limit },
    });
  const declared = Number(response.headers.get("content-length") ?? Number.NaN);
  if (declared > limit) {
    await response.body?.cancel().catch(() => undefined);
    throw tooLarge();
  }
  if (!response.body) return "";
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new ApiError("RUNNERD_UNREACHABLE", `runnerd's answer to ${what} broke off: ${reason(error)}`, {
      cause: error,
    });
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** JSON, or undefined for text that is not (which the caller's schema then refuses). */
function parseJson(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch (error) {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}

export function reason(error: unknown): string {
  if (error instanceof Error && error.name === "TimeoutError") return "timed out";
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause instanceof Error && "code" in cause && typeof cause.code === "string") return cause.code;
  return error instanceof Error ? error.message : String(error);
}
