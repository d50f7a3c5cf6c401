import { z } from "zod";

/** setTimeout's ceiling (about 24.8 days); longer timers would fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;

const noNul = (value: string) => !value.includes("\0");
const NO_NUL = "must not contain NUL bytes";

/** A string the kernel can take as an argument, path or environment value. */
export const CStringSchema = z.string().refine(noNul, NO_NUL);

export const ExecIdSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/,
    "must be 1-128 characters of letters, digits, '_', '.', '-', starting with a letter or digit",
  );

export const ExecTagSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$/,
    "must be 1-128 characters of letters, digits, '_', '.', ':', '/', '-', starting with a letter or digit",
  );

export const EnvNameSchema = z
  .string()
  .max(255)
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be a POSIX environment name ([A-Za-z_][A-Za-z0-9_]*)");

/** 128 KiB: the kernel's limit for one environment string (MAX_ARG_STRLEN). */
export const EnvValueSchema = z.string().max(131_072).refine(noNul, NO_NUL);

export const EnvMapSchema = z.record(EnvNameSchema, EnvValueSchema);

/** A path inside the workspace: relative to the root, or absolute under it. */
export const WorkspacePathSchema = z.string().min(1).max(4096).refine(noNul, NO_NUL);

export const SignalSchema = z.enum(["SIGINT", "SIGTERM", "SIGKILL", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2"]);
export type Signal = z.infer<typeof SignalSchema>;

export const EncodingSchema = z.enum(["utf8", "base64"]);
export type Encoding = z.infer<typeof EncodingSchema>;

export const Sha256HexSchema = z.string().regex(/^[0-9a-fA-F]{64}$/, "must be 64 hex digits");

/** Query-string booleans: `true`/`false`/`1`/`0`. */
export const QueryBooleanSchema = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

/** Query-string non-negative integers. */
export const QueryIntSchema = z
  .string()
  .regex(/^\d{1,15}$/, "must be a non-negative integer")
  .transform((v) => Number(v));
