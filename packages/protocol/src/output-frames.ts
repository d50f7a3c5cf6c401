import type { OutputStream } from "./events.js";

/**
 * Fast encoders for the hottest frames on the wire: stdout/stderr events.
 * They produce exactly the bytes `encodeSseEvent` would for the same event
 * (tests hold them to that), but skip the UTF-8 decode, JSON.stringify and
 * re-encode round trip: valid UTF-8 passes through as raw bytes (JSON allows
 * it) and only the characters JSON requires are escaped, working on a latin1
 * view of the bytes so V8's one-byte string paths do the work.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const OTHER_CONTROL_ALL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g;
const SHORT_ESCAPES: Record<string, string> = { "\b": "\\b", "\f": "\\f" };
/** Control bytes other than tab, newline and carriage return: rare in text, escaped on a slower path. */
const OTHER_CONTROL_BYTES = [...Array(32).keys()].filter((b) => b !== 0x09 && b !== 0x0a && b !== 0x0d);

function escapeControl(char: string): string {
  return SHORT_ESCAPES[char] ?? `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/**
 * JSON string-body escaping of UTF-8 bytes, returned as a latin1 view. Which
 * escapes are needed is decided with Buffer.indexOf (memchr), far cheaper
 * than a regular-expression scan; only the characters present are replaced.
 */
function escapeUtf8(bytes: Buffer): string {
  let out = bytes.toString("latin1");
  if (bytes.indexOf(0x5c) !== -1) out = out.replaceAll("\\", "\\\\");
  if (bytes.indexOf(0x22) !== -1) out = out.replaceAll('"', '\\"');
  if (bytes.indexOf(0x0a) !== -1) out = out.replaceAll("\n", "\\n");
  if (bytes.indexOf(0x0d) !== -1) out = out.replaceAll("\r", "\\r");
  if (bytes.indexOf(0x09) !== -1) out = out.replaceAll("\t", "\\t");
  if (OTHER_CONTROL_BYTES.some((b) => bytes.indexOf(b) !== -1)) out = out.replace(OTHER_CONTROL_ALL, escapeControl);
  return out;
}

/** The frame of a `{text}` output event whose text is `utf8` (which must be valid UTF-8). */
export function encodeUtf8OutputFrame(seq: number, type: OutputStream, utf8: Buffer): Buffer {
  return frame(`id: ${seq}\nevent: ${type}\ndata: {"text":"`, escapeUtf8(utf8), '"}\n\n');
}

/** The frame of a `{data}` (base64) output event carrying `bytes`. */
export function encodeBase64OutputFrame(seq: number, type: OutputStream, bytes: Buffer): Buffer {
  return frame(`id: ${seq}\nevent: ${type}\ndata: {"data":"`, bytes.toString("base64"), '"}\n\n');
}

/** Writes the three latin1 parts into one buffer: no concatenated string is built and flattened first. */
function frame(head: string, body: string, tail: string): Buffer {
  const out = Buffer.allocUnsafe(head.length + body.length + tail.length);
  out.write(head, 0, "latin1");
  out.write(body, head.length, "latin1");
  out.write(tail, head.length + body.length, "latin1");
  return out;
}
