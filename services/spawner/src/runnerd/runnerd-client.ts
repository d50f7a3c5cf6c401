import {
  ApiError,
  type EnvPatchRequest,
  EnvPatchResponseSchema,
  ErrorEnvelopeSchema,
  type Lease,
  LeaseResponseSchema,
  type RunnerdStatus,
  RunnerdStatusSchema,
} from "@sbx/protocol";
import type { z } from "zod";
import type { Endpoint } from "../backends/backend.js";

/** Control calls from the spawner to one session's runnerd (status, lease, env), with timeouts. */
export class RunnerdClient {
  constructor(
    private readonly endpoint: Endpoint,
    private readonly token: string,
  ) {}

  status(timeoutMs: number): Promise<RunnerdStatus> {
    return this.call("GET", "/v1/status", undefined, RunnerdStatusSchema, timeoutMs);
  }

  async setLease(lease: Lease, timeoutMs: number): Promise<void> {
    await this.call("PUT", "/v1/lease", lease, LeaseResponseSchema, timeoutMs);
  }

  patchEnv(patch: EnvPatchRequest, timeoutMs: number): Promise<z.infer<typeof EnvPatchResponseSchema>> {
    return this.call("PATCH", "/v1/env", patch, EnvPatchResponseSchema, timeoutMs);
  }

  /**
   * Runs once what a session's first moments use (lease, env, an exec streamed and one waited
   * for), so that a warm pool member answers its claim at full speed: a fresh runnerd compiles
   * each path the first time it runs it. Leaves no trace (the execs' records are removed).
   */
  async warmUp(timeoutMs: number): Promise<void> {
    const signal = AbortSignal.timeout(timeoutMs);
    const base = `http://${this.endpoint.host}:${this.endpoint.port}`;
    const headers = { authorization: `Bearer ${this.token}`, "content-type": "application/json" };
    await this.setLease({ expiresAt: Date.now() + 365 * 86_400_000, idleTimeoutMs: 86_400_000 }, timeoutMs);
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
      await response.text();
      if (!response.ok) throw new Error(`runnerd answered a warm-up exec with ${response.status}`);
      await (await fetch(`${base}/v1/execs/${execId}`, { method: "DELETE", headers, signal })).text();
    }
  }

  private async call<S extends z.ZodType>(
    method: string,
    path: string,
    body: unknown,
    schema: S,
    timeoutMs: number,
  ): Promise<z.output<S>> {
    let response: Response;
    try {
      response = await fetch(`http://${this.endpoint.host}:${this.endpoint.port}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, "content-type": "application/json" },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw new ApiError("RUNNERD_UNREACHABLE", `runnerd did not answer ${method} ${path}: ${reason(error)}`, {
        cause: error,
      });
    }
    const text = await response.text();
    const json: unknown = text === "" ? undefined : JSON.parse(text);
    if (!response.ok) {
      const envelope = ErrorEnvelopeSchema.safeParse(json);
      throw new ApiError(
        "RUNNERD_UNREACHABLE",
        `runnerd answered ${method} ${path} with ${response.status}${envelope.success ? `: ${envelope.data.error.message}` : ""}`,
      );
    }
    return schema.parse(json);
  }
}

export function reason(error: unknown): string {
  if (error instanceof Error && error.name === "TimeoutError") return "timed out";
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause instanceof Error && "code" in cause && typeof cause.code === "string") return cause.code;
  return error instanceof Error ? error.message : String(error);
}
