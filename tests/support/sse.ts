import { BinaryFrameDecoder, decodeSseEvent, EXEC_FRAMES_MEDIA_TYPE, type ExecEvent } from "@sbx/protocol";
import { createParser } from "eventsource-parser";

export interface ReadResult {
  events: ExecEvent[];
  /** SSE comment lines seen (heartbeats); over binary frames, `keep-alive` per heartbeat and each notice's text. */
  comments: string[];
  /** How the read ended: the server closed the stream, we stopped it, or the connection broke. */
  end: "closed" | "stopped" | "broken";
  error?: unknown;
}

/**
 * Reads an exec event stream, SSE or binary frames (by its content type),
 * validating each event against the protocol. `stopWhen` drops the
 * connection (like a client going away) once it returns true.
 */
export async function readEvents(
  response: Response,
  stopWhen?: (event: ExecEvent, all: ExecEvent[]) => boolean,
): Promise<ReadResult> {
  if (!response.body) throw new Error(`no body (status ${response.status})`);
  const events: ExecEvent[] = [];
  const comments: string[] = [];
  let stop = false;
  const parser = createParser({
    onEvent: (message) => {
      if (stop) return;
      const event = decodeSseEvent(message);
      events.push(event);
      if (stopWhen?.(event, events)) stop = true;
    },
    onComment: (comment) => comments.push(comment),
  });
  const frames = response.headers.get("content-type")?.startsWith(EXEC_FRAMES_MEDIA_TYPE)
    ? new BinaryFrameDecoder()
    : undefined;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { events, comments, end: "closed" };
      if (frames) {
        for (const frame of frames.push(value)) {
          if (stop) break;
          if (frame.kind === "heartbeat") comments.push("keep-alive");
          else if (frame.kind === "notice") comments.push(frame.text);
          else {
            events.push(frame.event);
            if (stopWhen?.(frame.event, events)) stop = true;
          }
        }
      } else parser.feed(decoder.decode(value, { stream: true }));
      if (stop) {
        await reader.cancel();
        return { events, comments, end: "stopped" };
      }
    }
  } catch (error) {
    return { events, comments, end: "broken", error };
  }
}

/** Joins the text of stdout (or stderr) events. */
export function textOf(events: ExecEvent[], stream: "stdout" | "stderr" = "stdout"): string {
  let out = "";
  for (const event of events) {
    if (event.type === stream && "text" in event.data) out += event.data.text;
  }
  return out;
}

/** Joins the bytes of base64 stdout (or stderr) events. */
export function bytesOf(events: ExecEvent[], stream: "stdout" | "stderr" = "stdout"): Buffer {
  const parts: Buffer[] = [];
  for (const event of events) {
    if (event.type === stream && "data" in event.data) parts.push(Buffer.from(event.data.data, "base64"));
  }
  return Buffer.concat(parts);
}

export function exitOf(events: ExecEvent[]) {
  const last = events.at(-1);
  if (last?.type !== "exit") throw new Error(`last event is ${last?.type ?? "none"}, not exit`);
  return last.data;
}
