import { decodeSseEvent, type ExecEvent } from "@sbx/protocol";
import { createParser } from "eventsource-parser";

/**
 * The exec events of one SSE response body, validated against the protocol,
 * in order. Heartbeat comments are skipped. Returns normally when the
 * server closes the stream (with or without an exit event: the caller
 * decides), throws when the connection breaks.
 */
export async function* readExecEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<ExecEvent> {
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
  const reader = body.getReader();
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
    await reader.cancel().catch(() => undefined);
  }
}
