import { type ExecEvent, ExecEventSchema, type ExecEventType, type OutputStream, SSE_HEARTBEAT } from "./events.js";
import { encodeBase64OutputFrame, encodeUtf8OutputFrame } from "./output-frames.js";

/**
 * The exec event stream in a compact binary framing: the same events, ids and
 * semantics as the SSE stream (gaps, heartbeats, the cut-off notice), without
 * text escaping or base64. A client asks for it with `Accept:` this type; SSE
 * stays the default.
 *
 * Each frame is a 12-byte header and a payload:
 *
 *   u8  kind     1 started, 2 stdout, 3 stderr, 4 exit, 5 gap, 6 heartbeat, 7 notice
 *   u8  flags    bit 0: an output payload is bytes of a base64-mode exec (else UTF-8 text)
 *   u32 length   payload bytes, big-endian
 *   u48 seq      the event id, big-endian (0 for heartbeat and notice)
 *
 * Output payloads are the process's bytes as they are (text mode: valid UTF-8,
 * never a split character); the other events carry their `data` as JSON; a
 * notice carries UTF-8 text.
 */
export const EXEC_FRAMES_MEDIA_TYPE = "application/vnd.sbx.exec-frames";

export const FRAME_HEADER_BYTES = 12;
const KIND_CODES: Record<ExecEventType | "heartbeat" | "notice", number> = {
  started: 1,
  stdout: 2,
  stderr: 3,
  exit: 4,
  gap: 5,
  heartbeat: 6,
  notice: 7,
};
const KINDS = ["", "started", "stdout", "stderr", "exit", "gap", "heartbeat", "notice"] as const;
const FLAG_BASE64 = 1;

/**
 * One exec event as runnerd keeps it: output as the raw bytes, anything else
 * as its JSON. Either wire form is made from it for the consumer that asks.
 */
export type StoredEvent =
  | { readonly seq: number; readonly type: OutputStream; readonly base64: boolean; readonly bytes: Buffer }
  | { readonly seq: number; readonly type: Exclude<ExecEventType, OutputStream>; readonly json: string };

/** A stored event from an event. */
export function storeEvent(event: ExecEvent): StoredEvent {
  if (event.type === "stdout" || event.type === "stderr") {
    return "text" in event.data
      ? { seq: event.seq, type: event.type, base64: false, bytes: Buffer.from(event.data.text, "utf8") }
      : { seq: event.seq, type: event.type, base64: true, bytes: Buffer.from(event.data.data, "base64") };
  }
  return { seq: event.seq, type: event.type, json: JSON.stringify(event.data) };
}

/** Bytes a stored event holds (what ring limits count). */
export function storedSize(event: StoredEvent): number {
  return "bytes" in event ? event.bytes.length : event.json.length;
}

/** The SSE frame of a stored event: exactly what `encodeSseEvent` gives for the event. */
export function toSseFrame(event: StoredEvent): Buffer {
  if ("bytes" in event) {
    return event.base64
      ? encodeBase64OutputFrame(event.seq, event.type, event.bytes)
      : encodeUtf8OutputFrame(event.seq, event.type, event.bytes);
  }
  return Buffer.from(`id: ${event.seq}\nevent: ${event.type}\ndata: ${event.json}\n\n`);
}

/** The binary frame of a stored event. */
export function toBinaryFrame(event: StoredEvent): Buffer {
  return Buffer.concat(toBinaryFrameParts(event));
}

/**
 * The binary frame of a stored event in the pieces it is written as: an output event is its
 * header and then the very bytes the process wrote (no copy); any other event, one buffer.
 */
export function toBinaryFrameParts(event: StoredEvent): readonly Buffer[] {
  if ("bytes" in event) {
    return [
      frameHeader(KIND_CODES[event.type], event.base64 ? FLAG_BASE64 : 0, event.seq, event.bytes.length),
      event.bytes,
    ];
  }
  return [binaryFrame(KIND_CODES[event.type], 0, event.seq, Buffer.from(event.json))];
}

function frameHeader(kind: number, flags: number, seq: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  header[0] = kind;
  header[1] = flags;
  header.writeUInt32BE(length, 2);
  header.writeUIntBE(seq, 6, 6);
  return header;
}

/** One binary frame as one buffer. */
export function binaryFrame(kind: number, flags: number, seq: number, payload: Uint8Array): Buffer {
  return Buffer.concat([frameHeader(kind, flags, seq, payload.length), payload]);
}

/** How each framing says what is not an event: a heartbeat, and the notice sent before a cut-off. */
export interface EventFraming {
  readonly mediaType: string;
  /** The event's bytes on the wire, in the pieces to write in order. */
  encode(event: StoredEvent): readonly Buffer[];
  readonly heartbeat: Buffer;
  notice(text: string): Buffer;
}

export const SSE_FRAMING: EventFraming = {
  mediaType: "text/event-stream; charset=utf-8",
  encode: (event) => [toSseFrame(event)],
  heartbeat: Buffer.from(SSE_HEARTBEAT),
  notice: (text) => Buffer.from(`: ${text}\n\n`),
};

export const BINARY_FRAMING: EventFraming = {
  mediaType: EXEC_FRAMES_MEDIA_TYPE,
  encode: toBinaryFrameParts,
  heartbeat: binaryFrame(KIND_CODES.heartbeat, 0, 0, Buffer.alloc(0)),
  notice: (text) => binaryFrame(KIND_CODES.notice, 0, 0, Buffer.from(text)),
};

/** The framing an `Accept` header asks for: binary only when named, SSE otherwise. */
export function framingFor(accept: string | undefined): EventFraming {
  return accept?.includes(EXEC_FRAMES_MEDIA_TYPE) ? BINARY_FRAMING : SSE_FRAMING;
}

/** One decoded binary frame: an event, or (for heartbeats and notices) nothing the caller needs. */
export type DecodedFrame =
  | {
      kind: "event";
      event: ExecEvent;
      /** An output event's bytes as they came (for other events, their JSON). */
      payload: Buffer;
      payloadBytes: number;
    }
  | { kind: "heartbeat" }
  | { kind: "notice"; text: string };

/**
 * Splits a binary frame stream into frames, whatever the chunking. Output
 * events are built directly (base64-mode output becomes base64 again, so
 * callers see the same events as over SSE); the rest are validated against
 * the protocol's schema.
 */
export class BinaryFrameDecoder {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  /** Frames completed by `chunk`, in order. Throws on a malformed frame. */
  push(chunk: Uint8Array): DecodedFrame[] {
    let buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (this.pendingBytes > 0) {
      this.pending.push(buffer);
      buffer = Buffer.concat(this.pending, this.pendingBytes + buffer.length);
      this.pending = [];
      this.pendingBytes = 0;
    }
    const out: DecodedFrame[] = [];
    let offset = 0;
    while (buffer.length - offset >= FRAME_HEADER_BYTES) {
      const length = buffer.readUInt32BE(offset + 2);
      const end = offset + FRAME_HEADER_BYTES + length;
      if (end > buffer.length) break;
      out.push(decodeFrame(buffer, offset, buffer.subarray(offset + FRAME_HEADER_BYTES, end)));
      offset = end;
    }
    if (offset < buffer.length) {
      // Keep the rest; a copy, so a large chunk is not pinned by a small tail.
      const rest = Buffer.from(buffer.subarray(offset));
      this.pending.push(rest);
      this.pendingBytes = rest.length;
    }
    return out;
  }

  /** Bytes of a frame begun but not completed (non-zero when a stream ends mid-frame). */
  get partialBytes(): number {
    return this.pendingBytes;
  }
}

function decodeFrame(buffer: Buffer, offset: number, payload: Buffer): DecodedFrame {
  const kind = KINDS[buffer[offset] ?? 0];
  const flags = buffer[offset + 1] ?? 0;
  const seq = buffer.readUIntBE(offset + 6, 6);
  switch (kind) {
    case "heartbeat":
      return { kind: "heartbeat" };
    case "notice":
      return { kind: "notice", text: payload.toString("utf8") };
    case "stdout":
    case "stderr": {
      if (seq < 1) throw new Error(`binary ${kind} frame has no sequence number`);
      // The text or base64 is made when first read: a reader that wants the bytes never pays for it.
      let data: { text: string } | { data: string } | undefined;
      const base64 = (flags & FLAG_BASE64) !== 0;
      const event: ExecEvent = {
        seq,
        type: kind,
        get data() {
          data ??= base64 ? { data: payload.toString("base64") } : { text: payload.toString("utf8") };
          return data;
        },
      };
      return { kind: "event", event, payload, payloadBytes: payload.length };
    }
    case "started":
    case "exit":
    case "gap": {
      let data: unknown;
      try {
        data = JSON.parse(payload.toString("utf8"));
      } catch (cause) {
        throw new Error(`binary ${kind} frame ${seq} has invalid JSON data`, { cause });
      }
      return {
        kind: "event",
        event: ExecEventSchema.parse({ seq, type: kind, data }),
        payload,
        payloadBytes: payload.length,
      };
    }
    default:
      throw new Error(`unknown binary frame kind ${buffer[offset]}`);
  }
}
