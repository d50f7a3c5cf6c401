import { once } from "node:events";
import { createReadStream, createWriteStream } from "node:fs";
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { createInterface } from "node:readline";
import type { Logger } from "@sbx/edge";
import { ExitDataSchema, type StoredEvent } from "@sbx/protocol";
import { z } from "zod";
import type { ExecSnapshot } from "../exec/exec.js";
import { isErrno } from "../exec/process-tree.js";
import { RESERVED_DIR } from "../files/workspace-root.js";

/** A kept event: output as its bytes (base64 here) and whether the exec was in base64 mode, the rest as JSON. */
const FrameSchema = z.union([
  z.strictObject({
    seq: z.int().min(1),
    type: z.enum(["stdout", "stderr"]),
    base64: z.boolean(),
    bytes: z.base64(),
  }),
  z.strictObject({ seq: z.int().min(1), type: z.enum(["started", "exit", "gap"]), json: z.string() }),
]);
type PersistedFrame = z.infer<typeof FrameSchema>;

function persistFrame(frame: StoredEvent): PersistedFrame {
  return "bytes" in frame ? { ...frame, bytes: frame.bytes.toString("base64") } : frame;
}

function loadFrame(frame: PersistedFrame): StoredEvent {
  return "bytes" in frame ? { ...frame, bytes: Buffer.from(frame.bytes, "base64") } : frame;
}
const ExecSnapshotSchema = z.object({
  execId: z.string(),
  tag: z.string().nullable(),
  encoding: z.enum(["utf8", "base64"]),
  pid: z.int().nullable(),
  startedAt: z.number(),
  endedAt: z.number(),
  exit: ExitDataSchema,
  evictedThrough: z.int().min(0),
  frames: z.array(FrameSchema),
  final: FrameSchema.nullable(),
});
const EnvFileSchema = z.object({ values: z.record(z.string(), z.string()) });
const RequestsFileSchema = z.object({ live: z.array(z.tuple([z.string().regex(/^[0-9a-f]{64}$/), z.number()])) });

/**
 * What runnerd keeps on the workspace volume so that a stop and resume (or
 * a restart) loses nothing: the session env, the signed requests acted on
 * within the replay window, and every retained
 * exec record with its replay buffer. Files are written whole to a temporary
 * name and renamed, so a reader sees the old state or the new, never half;
 * the directory is the session user's alone (0700, files 0600).
 */
export class StateStore {
  private constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {}

  /** Opens (making it if needed) the state directory; undefined `dir` keeps nothing. */
  static async open(dir: string | undefined, log: Logger): Promise<StateStore | undefined> {
    if (dir === undefined) return undefined;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
    // A workspace that is a git repository should not see runnerd's files as untracked.
    const parent = path.dirname(dir);
    if (path.basename(parent) === RESERVED_DIR) {
      await writeFile(path.join(parent, ".gitignore"), "*\n", { mode: 0o600 }).catch((error: unknown) =>
        log.warn({ err: error }, "could not write the state directory's .gitignore"),
      );
    }
    return new StateStore(dir, log);
  }

  async loadEnv(): Promise<Record<string, string>> {
    const file = await this.readJson("env.json", EnvFileSchema);
    return file?.values ?? {};
  }

  async saveEnv(values: Record<string, string>): Promise<void> {
    await this.writeWhole("env.json", JSON.stringify({ values }));
  }

  /** Signed requests acted on, with when each lapses (see ReplayGuard). */
  async loadRequests(): Promise<Array<[string, number]>> {
    return (await this.readJson("requests.json", RequestsFileSchema))?.live ?? [];
  }

  async saveRequests(live: Array<[string, number]>): Promise<void> {
    await this.writeWhole("requests.json", JSON.stringify({ live }));
  }

  /** Finished execs, oldest first; one JSON line each, so the file streams out and back in. */
  async saveExecs(snapshots: readonly ExecSnapshot[]): Promise<void> {
    const target = path.join(this.dir, "execs.jsonl");
    const temp = `${target}.${process.pid}.tmp`;
    const out = createWriteStream(temp, { mode: 0o600 });
    try {
      for (const s of snapshots) {
        const line = JSON.stringify({
          execId: s.execId,
          tag: s.tag ?? null,
          encoding: s.encoding,
          pid: s.pid ?? null,
          startedAt: s.startedAt,
          endedAt: s.endedAt,
          exit: s.exit,
          evictedThrough: s.ring.evictedThrough,
          frames: s.ring.frames.map(persistFrame),
          final: s.ring.final ? persistFrame(s.ring.final) : null,
        });
        if (!out.write(`${line}\n`)) await once(out, "drain");
      }
      out.end();
      await once(out, "finish");
      await rename(temp, target);
    } catch (error) {
      out.destroy();
      await rm(temp, { force: true });
      throw error;
    }
  }

  async loadExecs(): Promise<ExecSnapshot[]> {
    const file = path.join(this.dir, "execs.jsonl");
    const snapshots: ExecSnapshot[] = [];
    let lines: AsyncIterable<string>;
    try {
      const input = createReadStream(file, "utf8");
      await once(input, "open");
      lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
    } catch (error) {
      if (isErrno(error, "ENOENT")) return [];
      throw error;
    }
    for await (const line of lines) {
      if (line.trim() === "") continue;
      const parsed = ExecSnapshotSchema.safeParse(parseJson(line));
      if (!parsed.success) {
        // A line cut short (runnerd killed mid-write of an older format) costs that exec, not the rest.
        this.log.warn({ issues: parsed.error.issues.length }, "skipped an unreadable persisted exec");
        continue;
      }
      const s = parsed.data;
      snapshots.push({
        execId: s.execId,
        tag: s.tag ?? undefined,
        encoding: s.encoding,
        pid: s.pid ?? undefined,
        startedAt: s.startedAt,
        endedAt: s.endedAt,
        exit: s.exit,
        ring: {
          evictedThrough: s.evictedThrough,
          frames: s.frames.map(loadFrame),
          final: s.final ? loadFrame(s.final) : undefined,
        },
      });
    }
    return snapshots;
  }

  private async readJson<S extends z.ZodType>(name: string, schema: S): Promise<z.output<S> | undefined> {
    let text: string;
    try {
      text = await readFile(path.join(this.dir, name), "utf8");
    } catch (error) {
      if (isErrno(error, "ENOENT")) return undefined;
      throw error;
    }
    const parsed = schema.safeParse(parseJson(text));
    if (!parsed.success) {
      this.log.warn({ file: name }, "ignored an unreadable state file");
      return undefined;
    }
    return parsed.data;
  }

  private async writeWhole(name: string, text: string): Promise<void> {
    const target = path.join(this.dir, name);
    const temp = `${target}.${process.pid}.tmp`;
    await writeFile(temp, text, { mode: 0o600 });
    await rename(temp, target);
  }
}

/** JSON, or undefined for text that is not (which the caller's schema then refuses). */
function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}
