import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { OpenAPIHono, type RouteConfig } from "@hono/zod-openapi";
import { param } from "@sbx/edge";
import {
  type ApiError,
  ArchiveExtractResponseSchema,
  CancelRequestSchema,
  CancelResponseSchema,
  DeleteResponseSchema,
  EnvNamesResponseSchema,
  EnvPatchRequestSchema,
  EnvPatchResponseSchema,
  EXEC_FRAMES_MEDIA_TYPE,
  ExecInfoSchema,
  ExecListResponseSchema,
  ExecRequestSchema,
  ExecResultSchema,
  FetchRequestSchema,
  FetchResponseSchema,
  FileInfoSchema,
  FileListResponseSchema,
  FileWriteResponseSchema,
  MkdirRequestSchema,
  MkdirResponseSchema,
  MoveRequestSchema,
  MoveResponseSchema,
  SessionIdSchema,
  StdinWriteRequestSchema,
  StdinWriteResponseSchema,
} from "@sbx/protocol";
import type { Context } from "hono";
import { z } from "zod";
import type { SpawnerEnv } from "../auth/signature-auth.js";
import type { Metrics } from "../metrics.js";
import type { RunnerdProxy } from "../proxy/runnerd-proxy.js";
import type { SessionService } from "../sessions/session-service.js";
import { errorResponses, json, media, mount } from "./api-route.js";
import { SessionPathSchema } from "./sessions.js";

const S = "/v1/sessions/{id}";
const ExecPathSchema = SessionPathSchema.extend({ execId: z.string() });

const body = (schema: z.ZodType) => ({ content: { "application/json": { schema } }, required: true });
const rawBody = (type: string) => ({ content: { [type]: { schema: { type: "string" as const, format: "binary" } } } });

/**
 * Everything runnerd serves, under its session: `/v1/sessions/{id}/execs…`,
 * `/env`, `/files…` map one to one onto runnerd's `/v1/execs…`, `/v1/env`,
 * `/v1/files…`, with the same bodies, events and statuses. runnerd parses
 * and validates them; the spawner passes bytes.
 */
const PROXIED: Array<Omit<RouteConfig, "responses"> & { responses: RouteConfig["responses"] }> = [
  {
    method: "post",
    path: `${S}/execs`,
    summary: "Start an exec; its events as SSE (or binary frames when Accept asks), or one JSON result with ?wait=true",
    request: { params: SessionPathSchema, body: body(ExecRequestSchema) },
    responses: {
      200: {
        description:
          "the exec's events (text/event-stream, or application/vnd.sbx.exec-frames when Accept names it), or with ?wait=true its result",
        content: {
          "text/event-stream": { schema: { type: "string" } },
          [EXEC_FRAMES_MEDIA_TYPE]: { schema: { type: "string", format: "binary" } },
          "application/json": { schema: ExecResultSchema },
        },
      },
    },
  },
  {
    method: "get",
    path: `${S}/execs`,
    summary: "List execs (?tag=&state=running|exited)",
    request: { params: SessionPathSchema },
    responses: { 200: json(ExecListResponseSchema, "the execs") },
  },
  {
    method: "get",
    path: `${S}/execs/{execId}`,
    summary: "Get an exec",
    request: { params: ExecPathSchema },
    responses: { 200: json(ExecInfoSchema, "the exec") },
  },
  {
    method: "delete",
    path: `${S}/execs/{execId}`,
    summary: "Forget a finished exec",
    request: { params: ExecPathSchema },
    responses: { 204: { description: "forgotten" } },
  },
  {
    method: "get",
    path: `${S}/execs/{execId}/events`,
    summary: "Re-attach: replay after Last-Event-ID or ?after=, then follow",
    request: { params: ExecPathSchema },
    responses: {
      200: {
        description: "the exec's events: SSE, or binary frames when Accept names application/vnd.sbx.exec-frames",
        content: {
          "text/event-stream": { schema: { type: "string" } },
          [EXEC_FRAMES_MEDIA_TYPE]: { schema: { type: "string", format: "binary" } },
        },
      },
    },
  },
  {
    method: "post",
    path: `${S}/execs/{execId}/cancel`,
    summary: "Signal the exec's whole process tree (SIGTERM, grace, SIGKILL)",
    request: { params: ExecPathSchema, body: body(CancelRequestSchema) },
    responses: { 202: json(CancelResponseSchema, "signalled") },
  },
  {
    method: "post",
    path: `${S}/execs/{execId}/stdin`,
    summary: "Write to or close a held-open stdin",
    request: { params: ExecPathSchema, body: body(StdinWriteRequestSchema) },
    responses: { 200: json(StdinWriteResponseSchema, "written") },
  },
  {
    method: "get",
    path: `${S}/env`,
    summary: "Names of the session environment (never values)",
    request: { params: SessionPathSchema },
    responses: { 200: json(EnvNamesResponseSchema, "the names") },
  },
  {
    method: "patch",
    path: `${S}/env`,
    summary: "Set and unset session environment variables",
    request: { params: SessionPathSchema, body: body(EnvPatchRequestSchema) },
    responses: { 200: json(EnvPatchResponseSchema, "the names after the change") },
  },
  {
    method: "get",
    path: `${S}/files/content`,
    summary: "Read a file (?path=)",
    request: { params: SessionPathSchema },
    responses: { 200: media("application/octet-stream", "the file's bytes") },
  },
  {
    method: "put",
    path: `${S}/files/content`,
    summary: "Write a file atomically (?path=&mode=); the body streams",
    request: { params: SessionPathSchema, body: rawBody("application/octet-stream") },
    responses: { 200: json(FileWriteResponseSchema, "written") },
  },
  {
    method: "get",
    path: `${S}/files/stat`,
    summary: "Stat a path (?path=)",
    request: { params: SessionPathSchema },
    responses: { 200: json(FileInfoSchema, "the path's facts") },
  },
  {
    method: "get",
    path: `${S}/files/list`,
    summary: "List a directory (?path=&depth=)",
    request: { params: SessionPathSchema },
    responses: { 200: json(FileListResponseSchema, "the entries") },
  },
  {
    method: "delete",
    path: `${S}/files`,
    summary: "Delete a path (?path=&recursive=)",
    request: { params: SessionPathSchema },
    responses: { 200: json(DeleteResponseSchema, "deleted") },
  },
  {
    method: "post",
    path: `${S}/files/mkdir`,
    summary: "Make a directory and its parents",
    request: { params: SessionPathSchema, body: body(MkdirRequestSchema) },
    responses: { 200: json(MkdirResponseSchema, "made (or already there)") },
  },
  {
    method: "post",
    path: `${S}/files/move`,
    summary: "Move or rename",
    request: { params: SessionPathSchema, body: body(MoveRequestSchema) },
    responses: { 200: json(MoveResponseSchema, "moved") },
  },
  {
    method: "get",
    path: `${S}/files/archive`,
    summary: "A directory as a tar stream (?path=)",
    request: { params: SessionPathSchema },
    responses: { 200: media("application/x-tar", "the tar stream") },
  },
  {
    method: "put",
    path: `${S}/files/archive`,
    summary: "Extract a tar (or tar.gz) stream, all or nothing (?path=)",
    request: { params: SessionPathSchema, body: rawBody("application/x-tar") },
    responses: { 200: json(ArchiveExtractResponseSchema, "extracted") },
  },
  {
    method: "post",
    path: `${S}/files/fetch`,
    summary: "Download a URL into the workspace (size cap, optional sha256)",
    request: { params: SessionPathSchema, body: body(FetchRequestSchema) },
    responses: { 200: json(FetchResponseSchema, "downloaded") },
  },
];

/** The session calls runnerd answers, passed through byte for byte. */
export function sessionProxyRoutes(
  sessions: SessionService,
  proxy: RunnerdProxy,
  metrics: Metrics,
): OpenAPIHono<SpawnerEnv> {
  const app = new OpenAPIHono<SpawnerEnv>();
  const errors = errorResponses();

  const forward = async (c: Context<SpawnerEnv>) => {
    const id = param(c, "id", SessionIdSchema);
    const target = await sessions.target(id);
    const raw = c.env.incoming.url ?? c.req.path;
    const upstreamPath = `/v1${raw.slice(`/v1/sessions/${id}`.length)}`;
    if (c.req.method === "POST" && /^\/v1\/execs(\?|$)/.test(upstreamPath)) metrics.execsStarted.inc();
    const { outgoing } = c.env;
    const sendError = (error: ApiError) => {
      if (outgoing.headersSent) {
        outgoing.destroy();
        return;
      }
      const text = JSON.stringify(error.toEnvelope());
      outgoing.writeHead(error.status, {
        ...error.headers,
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
      });
      outgoing.end(text);
    };
    await proxy.forward({
      sessionId: id,
      incoming: c.env.incoming,
      outgoing,
      endpoint: target.endpoint,
      token: target.token,
      path: upstreamPath,
      requestId: c.get("signed")?.requestId,
      body: c.get("body"),
      expectedSha256: c.get("expectedSha256"),
      onBytes: (direction, bytes) => metrics.proxiedBytes.inc({ direction }, bytes),
      explainUnreachable: (error) => sessions.explainUnreachable(id, error),
      sendError,
    });
    return RESPONSE_ALREADY_SENT;
  };

  for (const route of PROXIED) mount(app, { ...route, responses: { ...route.responses, ...errors } }, forward);
  return app;
}
