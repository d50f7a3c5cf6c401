import type { Clock, Logger } from "@sbx/edge";
import { jsonBody, param, query } from "@sbx/edge";
import {
  ApiError,
  CancelRequestSchema,
  type CancelResponseSchema,
  ExecEventsQuerySchema,
  ExecIdSchema,
  ExecListQuerySchema,
  ExecRequestSchema,
  type ExecResult,
  ExecStartQuerySchema,
  framingFor,
  StdinWriteRequestSchema,
} from "@sbx/protocol";
import { type Context, Hono } from "hono";
import type { z } from "zod";
import { execEventStream } from "../exec/event-stream.js";
import type { Exec } from "../exec/exec.js";
import type { ExecManager } from "../exec/exec-manager.js";
import { OutputCollector } from "../exec/output-collector.js";

export interface ExecRoutesDeps {
  execs: ExecManager;
  heartbeatMs: number;
  consumerBufferBytes: number;
  waitOutputBytes: number;
  clock: Clock;
  log: Logger;
}

const STREAM_HEADERS = {
  "Cache-Control": "no-cache, no-transform",
  // Tells nginx-style proxies not to buffer the stream.
  "X-Accel-Buffering": "no",
  // Without it @hono/node-server waits (up to a timer tick) for the body to end so it can send a
  // Content-Length; an event stream must start at once.
  "Transfer-Encoding": "chunked",
};

export function execRoutes(deps: ExecRoutesDeps): Hono {
  const app = new Hono();
  const { execs } = deps;

  /** Events as SSE, or as binary frames when the caller's Accept names them. */
  const stream = (c: Context, exec: Exec, afterSeq: number, follow: boolean) => {
    const framing = framingFor(c.req.header("accept"));
    return new Response(
      execEventStream(exec, {
        framing,
        afterSeq,
        follow,
        backlogBytes: deps.consumerBufferBytes,
        heartbeatMs: deps.heartbeatMs,
        clock: deps.clock,
        onCut: () => deps.log.info({ execId: exec.execId }, "slow consumer cut off"),
      }),
      { status: 200, headers: { ...STREAM_HEADERS, "Content-Type": framing.mediaType, "X-Exec-Id": exec.execId } },
    );
  };

  app.post("/", async (c) => {
    const { wait } = query(c, ExecStartQuerySchema);
    const request = await jsonBody(c, ExecRequestSchema, "exec request");
    const exec = await execs.start(request);
    if (!wait) return stream(c, exec, 0, true);

    const collector = new OutputCollector(deps.waitOutputBytes);
    const detach = exec.addTap(collector);
    const signal = c.req.raw.signal;
    try {
      // A caller that gives up does not stop the exec: it only stops waiting.
      const gaveUp = new Promise<undefined>((resolve) => {
        if (signal.aborted) resolve(undefined);
        signal.addEventListener("abort", () => resolve(undefined), { once: true });
      });
      const exit = await Promise.race([exec.finished, gaveUp]);
      if (exit === undefined) return new Response(null, { status: 499 });
      const output = collector.result(exec.encoding);
      const result: ExecResult = {
        execId: exec.execId,
        exitCode: exit.exitCode,
        signal: exit.signal,
        outcome: exit.outcome,
        durationMs: exit.durationMs,
        encoding: exec.encoding,
        ...output,
        ...(exit.error ? { error: exit.error } : {}),
      };
      return c.json(result, 200, { "X-Exec-Id": exec.execId });
    } finally {
      detach();
    }
  });

  app.get("/", (c) => c.json({ execs: execs.list(query(c, ExecListQuerySchema)) }));

  const execParam = (c: Context) => param(c, "execId", ExecIdSchema);

  app.get("/:execId", (c) => c.json(execs.get(execParam(c)).info()));

  app.get("/:execId/events", (c) => {
    const exec = execs.get(execParam(c));
    const q = query(c, ExecEventsQuerySchema);
    const lastEventId = c.req.header("last-event-id");
    let afterSeq = q.after ?? 0;
    // EventSource resends the original URL on reconnect, so the header must win over ?after.
    if (lastEventId !== undefined && lastEventId.trim() !== "") {
      if (!/^\d{1,15}$/.test(lastEventId.trim())) {
        throw new ApiError("VALIDATION_FAILED", "Last-Event-ID must be a non-negative integer", {
          details: { issues: [{ path: "Last-Event-ID", message: "must be a non-negative integer" }] },
        });
      }
      afterSeq = Number(lastEventId.trim());
    }
    if (afterSeq > exec.lastSeq) {
      throw new ApiError(
        "CURSOR_AHEAD",
        `event ${afterSeq} is beyond the newest event ${exec.lastSeq} of exec ${exec.execId}; it was replaced or runnerd restarted`,
        { details: { lastSeq: exec.lastSeq } },
      );
    }
    return stream(c, exec, afterSeq, q.follow);
  });

  app.post("/:execId/cancel", async (c) => {
    const execId = execParam(c);
    const request = await jsonBody(c, CancelRequestSchema, "cancel request");
    const { exec, signalled } = execs.cancel(execId, request.signal, request.graceMs);
    const body: z.infer<typeof CancelResponseSchema> = {
      execId,
      state: exec.running ? "running" : "exited",
      signal: request.signal,
      signalled,
    };
    return c.json(body, 202);
  });

  app.post("/:execId/stdin", async (c) => {
    const exec = execs.get(execParam(c));
    const request = await jsonBody(c, StdinWriteRequestSchema, "stdin write");
    const data =
      request.text !== undefined
        ? Buffer.from(request.text, "utf8")
        : request.data !== undefined
          ? Buffer.from(request.data, "base64")
          : undefined;
    return c.json(await exec.writeStdin(data, request.eof === true, request.offset));
  });

  app.delete("/:execId", (c) => {
    const execId = execParam(c);
    execs.remove(execId);
    return c.body(null, 204);
  });

  return app;
}
