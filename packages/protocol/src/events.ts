import { z } from "zod";
import { ExecIdSchema } from "./primitives.js";

/**
 * `interrupted`: the session stopped (or runnerd restarted) while the exec ran; its output up
 * to then is kept and replayable after the session resumes.
 */
export const ExecOutcomeSchema = z.enum(["completed", "failed", "cancelled", "timeout", "orphaned", "interrupted"]);
export type ExecOutcome = z.infer<typeof ExecOutcomeSchema>;

/** Why an exec never ran (command not found, not executable, ...). */
export const ExecErrorSchema = z.object({ code: z.string(), message: z.string() });
export type ExecError = z.infer<typeof ExecErrorSchema>;

export const StartedDataSchema = z.object({
  execId: ExecIdSchema,
  pid: z.int(),
  startedAt: z.number(),
});

export type OutputStream = "stdout" | "stderr";

/** `text` in utf8 mode (never a split character), `data` (base64) in base64 mode. */
export const OutputDataSchema = z.union([z.strictObject({ text: z.string() }), z.strictObject({ data: z.base64() })]);
export type OutputData = z.infer<typeof OutputDataSchema>;

export const ExitDataSchema = z.object({
  exitCode: z.int().nullable(),
  signal: z.string().nullable(),
  outcome: ExecOutcomeSchema,
  durationMs: z.number(),
  /** True when the replay buffer has dropped some of this exec's output. */
  truncated: z.boolean(),
  error: ExecErrorSchema.optional(),
});
export type ExitData = z.infer<typeof ExitDataSchema>;

/** Events `fromSeq..toSeq` (inclusive) were evicted before this replay reached them. */
export const GapDataSchema = z.object({ fromSeq: z.int().min(1), toSeq: z.int().min(1) });

const Seq = z.int().min(1);

export const ExecEventSchema = z.discriminatedUnion("type", [
  z.object({ seq: Seq, type: z.literal("started"), data: StartedDataSchema }),
  z.object({ seq: Seq, type: z.literal("stdout"), data: OutputDataSchema }),
  z.object({ seq: Seq, type: z.literal("stderr"), data: OutputDataSchema }),
  z.object({ seq: Seq, type: z.literal("exit"), data: ExitDataSchema }),
  z.object({ seq: Seq, type: z.literal("gap"), data: GapDataSchema }),
]);
export type ExecEvent = z.infer<typeof ExecEventSchema>;
export type ExecEventType = ExecEvent["type"];

/**
 * One SSE frame per event: `id` is the sequence number (a gap carries its
 * `toSeq`, so resuming from the last id seen never repeats or skips), `event`
 * the type, and one JSON `data` line (JSON never contains a raw newline).
 */
export function encodeSseEvent(event: ExecEvent): string {
  return `id: ${event.seq}\nevent: ${event.type}\ndata: ${JSON.stringify(event.data)}\n\n`;
}

/** SSE comment line sent on quiet streams so proxies keep them open. */
export const SSE_HEARTBEAT = ": keep-alive\n\n";

export interface SseMessage {
  id?: string | undefined;
  event?: string | undefined;
  data: string;
}

/** Validates one parsed SSE message as an exec event; throws on anything else. */
export function decodeSseEvent(message: SseMessage): ExecEvent {
  let data: unknown;
  try {
    data = JSON.parse(message.data);
  } catch (cause) {
    throw new Error(`SSE event ${message.id ?? "?"} has invalid JSON data`, { cause });
  }
  return ExecEventSchema.parse({ seq: Number(message.id), type: message.event, data });
}
