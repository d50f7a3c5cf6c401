import { z } from "zod";
import { ExecErrorSchema, ExecOutcomeSchema } from "./events.js";
import {
  CStringSchema,
  EncodingSchema,
  EnvMapSchema,
  EnvNameSchema,
  ExecIdSchema,
  ExecTagSchema,
  MAX_TIMER_MS,
  QueryBooleanSchema,
  QueryIntSchema,
  Sha256HexSchema,
  SignalSchema,
  WorkspacePathSchema,
} from "./primitives.js";

// ---- service -----------------------------------------------------------

export const HealthResponseSchema = z.object({ status: z.literal("ok") });

/**
 * On a mutating request the spawner passes on: the signed request's id (`requestIdOf`). runnerd
 * acts on an id once; a second request with it is refused (`401 NONCE_REPLAYED`).
 */
export const REQUEST_ID_HEADER = "x-sbx-request-id";
export const RequestIdSchema = z.string().regex(/^[0-9a-f]{64}$/, "must be 64 lower-case hex digits");

/**
 * What runnerd says of itself. Session-controlled input to the spawner (runnerd runs as the
 * session's uid): bounded here, and never the source of a limit or a lifetime.
 */
export const RunnerdStatusSchema = z.object({
  version: z.string().max(200),
  /** Random per process start: a change means runnerd restarted and lost its execs. */
  incarnation: z.string().max(200),
  bootedAt: z.number(),
  /** Last authenticated API call other than this status read (epoch ms). */
  lastActivityAt: z.number(),
  liveExecs: z.int().min(0).max(1_000_000),
});
export type RunnerdStatus = z.infer<typeof RunnerdStatusSchema>;

// ---- execs -------------------------------------------------------------

export const StdinSpecSchema = z
  .strictObject({
    text: z.string().optional(),
    data: z.base64().optional(),
    /** `close` (default): stdin ends after the initial bytes; `hold`: it stays open for later writes. */
    mode: z.enum(["close", "hold"]).default("close"),
  })
  .refine((s) => s.text === undefined || s.data === undefined, {
    message: "give text or data, not both",
    path: ["data"],
  });

export const ExecRequestSchema = z
  .strictObject({
    execId: ExecIdSchema.optional(),
    argv: z.array(CStringSchema).min(1).max(65_536).optional(),
    shell: CStringSchema.min(1).optional(),
    cwd: WorkspacePathSchema.optional(),
    env: EnvMapSchema.optional(),
    stdin: StdinSpecSchema.optional(),
    /** Hard limit on the exec's run time. Absent: none. */
    timeoutMs: z.int().min(1).max(MAX_TIMER_MS).optional(),
    /** Overrides RUNNERD_ORPHAN_TIMEOUT_MS for this exec. */
    orphanTimeoutMs: z.int().min(1000).max(MAX_TIMER_MS).optional(),
    encoding: EncodingSchema.default("utf8"),
    tag: ExecTagSchema.optional(),
  })
  .superRefine((req, ctx) => {
    if ((req.argv === undefined) === (req.shell === undefined)) {
      ctx.addIssue({ code: "custom", path: ["argv"], message: "give exactly one of argv or shell" });
    }
  });
/** What a client sends (defaults optional). */
export type ExecRequest = z.input<typeof ExecRequestSchema>;
/** What a server holds after parsing (defaults applied). */
export type ParsedExecRequest = z.output<typeof ExecRequestSchema>;

export const ExecStartQuerySchema = z.strictObject({ wait: QueryBooleanSchema.default(false) });

export const ExecEventsQuerySchema = z.strictObject({
  after: QueryIntSchema.optional(),
  follow: QueryBooleanSchema.default(true),
});

export const ExecListQuerySchema = z.strictObject({
  tag: ExecTagSchema.optional(),
  state: z.enum(["running", "exited"]).optional(),
});

export const ExecStateSchema = z.enum(["running", "exited"]);

export const ExecInfoSchema = z.object({
  execId: ExecIdSchema,
  tag: z.string().nullable(),
  state: ExecStateSchema,
  pid: z.int().nullable(),
  startedAt: z.number(),
  endedAt: z.number().nullable(),
  exitCode: z.int().nullable(),
  signal: z.string().nullable(),
  outcome: ExecOutcomeSchema.nullable(),
  error: ExecErrorSchema.optional(),
  encoding: EncodingSchema,
  stdinOpen: z.boolean(),
  /** Clients currently following the exec's events. */
  consumers: z.int(),
  /** Sequence number of the newest event. */
  lastSeq: z.int(),
});
export type ExecInfo = z.infer<typeof ExecInfoSchema>;

export const ExecListResponseSchema = z.object({ execs: z.array(ExecInfoSchema) });

/** `?wait=true`: one JSON result instead of an event stream. */
export const ExecResultSchema = z.object({
  execId: ExecIdSchema,
  exitCode: z.int().nullable(),
  signal: z.string().nullable(),
  outcome: ExecOutcomeSchema,
  durationMs: z.number(),
  encoding: EncodingSchema,
  stdout: z.string(),
  stderr: z.string(),
  /** True when stdout or stderr was cut to the collection cap (the newest bytes are kept). */
  truncated: z.boolean(),
  error: ExecErrorSchema.optional(),
});
export type ExecResult = z.infer<typeof ExecResultSchema>;

export const CancelRequestSchema = z.strictObject({
  signal: SignalSchema.default("SIGTERM"),
  /** Time between the signal and SIGKILL for whatever is still alive. */
  graceMs: z.int().min(0).max(600_000).default(5000),
});
export type CancelRequest = z.input<typeof CancelRequestSchema>;

export const CancelResponseSchema = z.object({
  execId: ExecIdSchema,
  state: ExecStateSchema,
  signal: SignalSchema,
  /** Processes the signal was delivered to. */
  signalled: z.int(),
});

export const StdinWriteRequestSchema = z
  .strictObject({
    text: z.string().optional(),
    data: z.base64().optional(),
    eof: z.boolean().optional(),
    /**
     * Where in the exec's stdin these bytes start (the initial stdin counts). With it a write is
     * safe to retry: bytes already received are skipped, and a write past them is refused.
     */
    offset: z.int().min(0).optional(),
  })
  .refine((s) => s.text === undefined || s.data === undefined, {
    message: "give text or data, not both",
    path: ["data"],
  })
  .refine((s) => s.text !== undefined || s.data !== undefined || s.eof === true, {
    message: "give text, data or eof: true",
  });
export type StdinWriteRequest = z.input<typeof StdinWriteRequestSchema>;

/** `written`: bytes of this request passed to the process; `received`: stdin's length so far. */
export const StdinWriteResponseSchema = z.object({ written: z.int(), closed: z.boolean(), received: z.int() });

// ---- env ---------------------------------------------------------------

export const EnvNamesResponseSchema = z.object({ names: z.array(z.string()) });

export const EnvPatchRequestSchema = z
  .strictObject({
    set: EnvMapSchema.optional(),
    unset: z.array(EnvNameSchema).optional(),
  })
  .superRefine((req, ctx) => {
    const setNames = new Set(Object.keys(req.set ?? {}));
    for (const [i, name] of (req.unset ?? []).entries()) {
      if (setNames.has(name)) ctx.addIssue({ code: "custom", path: ["unset", i], message: `${name} is also in set` });
    }
  });
export type EnvPatchRequest = z.input<typeof EnvPatchRequestSchema>;

export const EnvPatchResponseSchema = z.object({
  names: z.array(z.string()),
  /** Names refused by policy (runnerd's own configuration, names that would break execs). */
  denied: z.array(z.string()),
});

// ---- files -------------------------------------------------------------

export const FileTypeSchema = z.enum(["file", "directory", "symlink", "other"]);

export const FileInfoSchema = z.object({
  /** Relative to the workspace root, `/`-separated; the root itself is `.`. */
  path: z.string(),
  name: z.string(),
  type: FileTypeSchema,
  size: z.number(),
  /** Permission bits in octal, e.g. `0644`. */
  mode: z.string(),
  mtimeMs: z.number(),
  /** Where a symlink points (as stored in the link). */
  target: z.string().optional(),
});
export type FileInfo = z.infer<typeof FileInfoSchema>;

export const PathQuerySchema = z.strictObject({ path: WorkspacePathSchema });

export const FileModeSchema = z.string().regex(/^0?[0-7]{3,4}$/, "must be octal permission bits such as 0644");

export const FileWriteQuerySchema = z.strictObject({
  path: WorkspacePathSchema,
  mode: FileModeSchema.optional(),
});

export const FileWriteResponseSchema = z.object({ path: z.string(), size: z.number(), sha256: z.string() });

export const FileListQuerySchema = z.strictObject({
  path: WorkspacePathSchema.default("."),
  depth: QueryIntSchema.pipe(z.int().min(1).max(32)).default(1),
});

export const FileListResponseSchema = z.object({
  path: z.string(),
  entries: z.array(FileInfoSchema),
  /** True when the listing stopped at the entry cap. */
  truncated: z.boolean(),
});

export const FileDeleteQuerySchema = z.strictObject({
  path: WorkspacePathSchema,
  recursive: QueryBooleanSchema.default(false),
});

export const MkdirRequestSchema = z.strictObject({ path: WorkspacePathSchema });
export const MkdirResponseSchema = z.object({ path: z.string(), created: z.boolean() });

export const MoveRequestSchema = z.strictObject({
  from: WorkspacePathSchema,
  to: WorkspacePathSchema,
  overwrite: z.boolean().default(false),
});
export const MoveResponseSchema = z.object({ from: z.string(), to: z.string() });

export const DeleteResponseSchema = z.object({ path: z.string() });

export const ArchiveExtractResponseSchema = z.object({
  path: z.string(),
  /** Entries written (files, directories, links). */
  entries: z.int(),
  bytes: z.number(),
});

export const FetchRequestSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: "must be an http or https URL" }),
  path: WorkspacePathSchema,
  maxBytes: z.int().min(1).optional(),
  sha256: Sha256HexSchema.optional(),
  mode: FileModeSchema.optional(),
});
export type FetchRequest = z.input<typeof FetchRequestSchema>;

export const FetchResponseSchema = FileWriteResponseSchema;
