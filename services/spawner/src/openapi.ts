import {
  CancelRequestSchema,
  CreateSessionRequestSchema,
  EnvNamesResponseSchema,
  EnvPatchRequestSchema,
  EnvPatchResponseSchema,
  ERROR_STATUS,
  ErrorEnvelopeSchema,
  ExecInfoSchema,
  ExecListResponseSchema,
  ExecRequestSchema,
  ExecResultSchema,
  FetchRequestSchema,
  FileInfoSchema,
  FileListResponseSchema,
  FileWriteResponseSchema,
  MkdirRequestSchema,
  MoveRequestSchema,
  PatchSessionRequestSchema,
  SessionListResponseSchema,
  SessionResponseSchema,
  StdinWriteRequestSchema,
  StdinWriteResponseSchema,
} from "@sbx/protocol";
import { z } from "zod";

interface Operation {
  method: "get" | "post" | "put" | "patch" | "delete";
  path: string;
  summary: string;
  request?: z.ZodType;
  response?: z.ZodType;
  /** A non-JSON body or answer (event stream, file, tar). */
  media?: { request?: string; response?: string };
  status?: number;
}

const S = "/v1/sessions/{id}";

/** The public API, operation by operation, described with the protocol's own schemas. */
const OPERATIONS: Operation[] = [
  {
    method: "post",
    path: "/v1/sessions",
    summary: "Create a session (idempotent per id and spec)",
    request: CreateSessionRequestSchema,
    response: SessionResponseSchema,
    status: 201,
  },
  {
    method: "get",
    path: "/v1/sessions",
    summary: "List sessions (?org=&owner=&label=k=v)",
    response: SessionListResponseSchema,
  },
  { method: "get", path: S, summary: "Get a session", response: SessionResponseSchema },
  {
    method: "patch",
    path: S,
    summary: "Change a session's lifetime",
    request: PatchSessionRequestSchema,
    response: SessionResponseSchema,
  },
  { method: "delete", path: S, summary: "Delete a session and its workspace", status: 204 },
  {
    method: "post",
    path: `${S}/execs`,
    summary: "Start an exec; its events as SSE (or one JSON result with ?wait=true)",
    request: ExecRequestSchema,
    response: ExecResultSchema,
    media: { response: "text/event-stream" },
  },
  { method: "get", path: `${S}/execs`, summary: "List execs", response: ExecListResponseSchema },
  { method: "get", path: `${S}/execs/{execId}`, summary: "Get an exec", response: ExecInfoSchema },
  { method: "delete", path: `${S}/execs/{execId}`, summary: "Forget a finished exec", status: 204 },
  {
    method: "get",
    path: `${S}/execs/{execId}/events`,
    summary: "Re-attach: replay after Last-Event-ID or ?after=, then follow",
    media: { response: "text/event-stream" },
  },
  {
    method: "post",
    path: `${S}/execs/{execId}/cancel`,
    summary: "Signal the exec's whole process tree",
    request: CancelRequestSchema,
    status: 202,
  },
  {
    method: "post",
    path: `${S}/execs/{execId}/stdin`,
    summary: "Write to or close a held-open stdin",
    request: StdinWriteRequestSchema,
    response: StdinWriteResponseSchema,
  },
  { method: "get", path: `${S}/env`, summary: "Names of the session environment", response: EnvNamesResponseSchema },
  {
    method: "patch",
    path: `${S}/env`,
    summary: "Set and unset session environment variables",
    request: EnvPatchRequestSchema,
    response: EnvPatchResponseSchema,
  },
  {
    method: "get",
    path: `${S}/files/content`,
    summary: "Read a file (?path=)",
    media: { response: "application/octet-stream" },
  },
  {
    method: "put",
    path: `${S}/files/content`,
    summary: "Write a file atomically (?path=&mode=)",
    response: FileWriteResponseSchema,
    media: { request: "application/octet-stream" },
  },
  { method: "get", path: `${S}/files/stat`, summary: "Stat a path (?path=)", response: FileInfoSchema },
  {
    method: "get",
    path: `${S}/files/list`,
    summary: "List a directory (?path=&depth=)",
    response: FileListResponseSchema,
  },
  { method: "delete", path: `${S}/files`, summary: "Delete a path (?path=&recursive=)" },
  {
    method: "post",
    path: `${S}/files/mkdir`,
    summary: "Make a directory and its parents",
    request: MkdirRequestSchema,
  },
  { method: "post", path: `${S}/files/move`, summary: "Move or rename", request: MoveRequestSchema },
  {
    method: "get",
    path: `${S}/files/archive`,
    summary: "A directory as a tar stream (?path=)",
    media: { response: "application/x-tar" },
  },
  {
    method: "put",
    path: `${S}/files/archive`,
    summary: "Extract a tar (or tar.gz) stream, all or nothing (?path=)",
    media: { request: "application/x-tar" },
  },
  {
    method: "post",
    path: `${S}/files/fetch`,
    summary: "Download a URL into the workspace",
    request: FetchRequestSchema,
    response: FileWriteResponseSchema,
  },
];

const json = (schema: z.ZodType, io: "input" | "output") => z.toJSONSchema(schema, { io, unrepresentable: "any" });

/** OpenAPI 3.1 document generated from the same zod schemas that validate the traffic. */
export function openApiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const errorStatuses = [...new Set(Object.values(ERROR_STATUS))].sort();
  for (const op of OPERATIONS) {
    const parameters = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1],
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    const responses: Record<string, unknown> = {
      [String(op.status ?? 200)]: {
        description: "success",
        ...(op.response || op.media?.response
          ? {
              content: {
                ...(op.response ? { "application/json": { schema: json(op.response, "output") } } : {}),
                ...(op.media?.response ? { [op.media.response]: {} } : {}),
              },
            }
          : {}),
      },
    };
    for (const status of errorStatuses) {
      responses[String(status)] = {
        description: "error envelope",
        content: { "application/json": { schema: json(ErrorEnvelopeSchema, "output") } },
      };
    }
    const requestBody =
      op.request || op.media?.request
        ? {
            required: op.request !== undefined,
            content: op.request
              ? { "application/json": { schema: json(op.request, "input") } }
              : { [op.media?.request ?? "application/octet-stream"]: { schema: { type: "string", format: "binary" } } },
          }
        : undefined;
    paths[op.path] ??= {};
    const item = paths[op.path];
    if (item) {
      item[op.method] = {
        summary: op.summary,
        parameters,
        ...(requestBody ? { requestBody } : {}),
        responses,
        security: [{ hmac: [] }],
      };
    }
  }
  return {
    openapi: "3.1.0",
    info: { title: "sbx spawner", version, description: "Persistent sandbox sessions for coding agents." },
    components: {
      securitySchemes: {
        hmac: {
          type: "apiKey",
          in: "header",
          name: "X-Sandbox-Signature",
          description:
            "HMAC-SHA256 over `v1\\nMETHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nCONTENT_SHA256`, with X-Sandbox-Key-Id, -Timestamp, -Nonce and -Content-SHA256 headers.",
        },
      },
    },
    paths,
  };
}
