import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { signRequest, UNSIGNED_PAYLOAD } from "@sbx/protocol";
import type { z } from "zod";
import { ConnectionError, errorFromResponse } from "./errors.js";

export interface ClientOptions {
  /** The spawner, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /** Signing key id (default `default`). */
  keyId?: string | undefined;
  /** Signing secret. */
  secret: string;
  /** A fetch implementation (default: the global one). */
  fetch?: typeof fetch | undefined;
}

/** A request body: JSON (signed), bytes (signed), or a stream (sent as UNSIGNED-PAYLOAD on upload routes). */
export type Body = { json: unknown } | { bytes: Uint8Array | string } | { stream: ReadableStream<Uint8Array> };

export interface RequestOptions {
  body?: Body | undefined;
  headers?: Record<string, string> | undefined;
  signal?: AbortSignal | undefined;
}

/** Signs every request, sends it, and turns error responses into typed errors. */
export class Transport {
  private readonly baseUrl: string;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** Sends a signed request; resolves with the response when it is 2xx, throws a typed error otherwise. */
  async send(method: string, pathWithQuery: string, options: RequestOptions = {}): Promise<Response> {
    const body = options.body;
    let payload: string | Uint8Array | ReadableStream<Uint8Array> | undefined;
    let signed: string | Uint8Array | typeof UNSIGNED_PAYLOAD | undefined;
    const headers: Record<string, string> = { ...options.headers };
    if (body && "json" in body) {
      payload = JSON.stringify(body.json);
      signed = payload;
      headers["content-type"] = "application/json";
    } else if (body && "bytes" in body) {
      payload = body.bytes;
      signed = body.bytes;
    } else if (body && "stream" in body) {
      payload = body.stream;
      signed = UNSIGNED_PAYLOAD;
    }
    const signature = signRequest({
      keyId: this.options.keyId,
      secret: this.options.secret,
      method,
      pathWithQuery,
      body: signed,
    });
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.baseUrl}${pathWithQuery}`, {
        method,
        headers: { ...headers, ...signature },
        ...(payload === undefined ? {} : { body: payload }),
        // A streamed request body needs half-duplex in fetch.
        ...(payload instanceof ReadableStream ? { duplex: "half" as const } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      if (options.signal?.aborted) throw options.signal.reason ?? error;
      throw new ConnectionError(`cannot reach ${this.baseUrl}: ${describe(error)}`, "CONNECTION_FAILED", 0, undefined, {
        cause: error,
      });
    }
    if (!response.ok) throw await errorFromResponse(response);
    return response;
  }

  /**
   * Sends a signed request with Node's own HTTP client, for bulk transfers: the body is piped from
   * a Node stream (sent as UNSIGNED-PAYLOAD) and the answer comes back as Node's response stream,
   * with no web-stream wrapping of every chunk on either side. Resolves with a 2xx response,
   * throws a typed error otherwise (an early answer, such as a refusal, wins over the upload).
   */
  async sendNode(
    method: string,
    pathWithQuery: string,
    options: { body?: Readable | undefined; signal?: AbortSignal | undefined } = {},
  ): Promise<IncomingMessage> {
    const headers = signRequest({
      keyId: this.options.keyId,
      secret: this.options.secret,
      method,
      pathWithQuery,
      body: options.body ? UNSIGNED_PAYLOAD : undefined,
    });
    const url = new URL(`${this.baseUrl}${pathWithQuery}`);
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      let sourceError: unknown;
      options.body?.once("error", (error) => {
        sourceError = error;
      });
      const request = (url.protocol === "https:" ? https : http).request(
        url,
        { method, headers, ...(options.signal ? { signal: options.signal } : {}) },
        resolve,
      );
      request.on("error", (error) => {
        if (sourceError !== undefined) reject(sourceError);
        else if (options.signal?.aborted) reject(options.signal.reason ?? error);
        else
          reject(
            new ConnectionError(`cannot reach ${this.baseUrl}: ${describe(error)}`, "CONNECTION_FAILED", 0, undefined, {
              cause: error,
            }),
          );
      });
      // A failed upload surfaces as the request's error or the server's answer; both are handled.
      if (options.body) pipeline(options.body, request).catch(() => undefined);
      else request.end();
    });
    const status = response.statusCode ?? 0;
    if (status >= 200 && status < 300) return response;
    const answer = new Headers();
    for (const [name, value] of Object.entries(response.headers)) {
      if (typeof value === "string") answer.set(name, value);
    }
    throw await errorFromResponse(new Response(await bodyOf(response), { status, headers: answer }));
  }

  /** Sends a signed request and parses its JSON answer with `schema`. */
  async json<S extends z.ZodType>(
    method: string,
    pathWithQuery: string,
    schema: S,
    options: RequestOptions = {},
  ): Promise<z.output<S>> {
    const response = await this.send(method, pathWithQuery, options);
    return schema.parse(await response.json());
  }

  /** Sends a signed request whose answer has no body worth reading. */
  async empty(method: string, pathWithQuery: string, options: RequestOptions = {}): Promise<void> {
    const response = await this.send(method, pathWithQuery, options);
    await response.body?.cancel();
  }
}

export function describe(error: unknown): string {
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause instanceof Error && "code" in cause && typeof cause.code === "string") return cause.code;
  return error instanceof Error ? error.message : String(error);
}

/** `?a=1&b=2` from defined values (repeated keys for arrays); empty when none. */
export function queryString(params: Record<string, string | number | boolean | string[] | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) search.append(key, v);
    else search.append(key, String(value));
  }
  const text = search.toString();
  return text === "" ? "" : `?${text}`;
}

/** The whole body of a Node response (a small JSON answer or error envelope). */
export async function bodyOf(response: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
