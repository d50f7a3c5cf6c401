import { BinaryFrameDecoder, decodeSseEvent, EXEC_FRAMES_MEDIA_TYPE, type ExecEvent, SSE_FRAMING } from "@sbx/protocol";
import { createParser } from "eventsource-parser";

/** What the SDK asks exec event routes for: binary frames, else SSE (a server that has no frames answers SSE). */
export const EVENT_STREAM_ACCEPT = `${EXEC_FRAMES_MEDIA_TYPE}, ${SSE_FRAMING.mediaType.split(";")[0]};q=0.9`;

/**
 * The exec events of one response body, in order, in whichever framing the
 * server answered with (its content type): binary frames or SSE. Heartbeats
 * are skipped. Returns normally when the server closes the stream (with or
 * without an exit event: the caller decides), throws when the connection
 * breaks or a frame is malformed.
 */
export function readExecEvents(
  body: ReadableStream<Uint8Array>,
  contentType: string | null,
  /** Ends the reading (the connection is let go) when it fires, even while a read waits. */
  signal?: AbortSignal,
): AsyncGenerator<ExecEvent> {
  return contentType?.startsWith(EXEC_FRAMES_MEDIA_TYPE) ? readFrameEvents(body, signal) : readSseEvents(body, signal);
}

/** The body's reader, cancelled when `signal` fires: a pending read then ends as if the stream did. */
function readerOf(body: ReadableStream<Uint8Array>, signal: AbortSignal | undefined) {
  const reader = body.getReader();
  const hangUp = () => void reader.cancel().catch(() => undefined);
  if (signal?.aborted) hangUp();
  else signal?.addEventListener("abort", hangUp, { once: true });
  return {
    reader,
    release: async () => {
      signal?.removeEventListener("abort", hangUp);
      await reader.cancel().catch(() => undefined);
    },
  };
}

async function* readFrameEvents(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<ExecEvent> {
  const decoder = new BinaryFrameDecoder();
  const { reader, release } = readerOf(body, signal);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      for (const frame of decoder.push(value)) if (frame.kind === "event") yield frame.event;
    }
  } finally {
    await release();
  }
}

async function* readSseEvents(body: ReadableStream<Uint8Array>, signal?: AbortSignal): AsyncGenerator<ExecEvent> {
  const ready: ExecEvent[] = [];
  let invalid: unknown;
  const parser = createParser({
    onEvent: (message) => {
      try {
        ready.push(decodeSseEvent(message));
      } catch (error) {
        invalid ??= error;
      }
    },
  });
  const decoder = new TextDecoder();
  const { reader, release } = readerOf(body, signal);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      parser.feed(decoder.decode(value, { stream: true }));
      if (invalid !== undefined) throw invalid;
      while (ready.length > 0) {
        const event = ready.shift();
        if (event) yield event;
      }
    }
  } finally {
    // Leaving early (an exit event, or the caller stopped) releases the connection.
    await release();
  }
}
