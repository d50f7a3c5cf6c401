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
const OTHER_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const OTHER_CONTROL_ALL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g;
const SHORT_ESCAPES: Record<string, string> = { "\b": "\\b", "\f": "\\f" };

function escapeControl(char: string): string {
  return SHORT_ESCAPES[char] ?? `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;
}

/** JSON string-body escaping of a latin1 view of UTF-8 bytes. */
function escapeLatin1View(view: string): string {
  let out = view;
  if (out.includes("\\")) out = out.replaceAll("\\", "\\\\");
  if (out.includes('"')) out = out.replaceAll('"', '\\"');
  if (out.includes("\n")) out = out.replaceAll("\n", "\\n");
  if (out.includes("\r")) out = out.replaceAll("\r", "\\r");
  if (out.includes("\t")) out = out.replaceAll("\t", "\\t");
  if (OTHER_CONTROL.test(out)) out = out.replace(OTHER_CONTROL_ALL, escapeControl);
  return out;
}

/** The frame of a `{text}` output event whose text is `utf8` (which must be valid UTF-8). */
export function encodeUtf8OutputFrame(seq: number, type: OutputStream, utf8: Buffer): Buffer {
  const body = escapeLatin1View(utf8.toString("latin1"));
  return Buffer.from(`id: ${seq}\nevent: ${type}\ndata: {"text":"${body}"}\n\n`, "latin1");
}

/** The frame of a `{data}` (base64) output event carrying `bytes`. */
export function encodeBase64OutputFrame(seq: number, type: OutputStream, bytes: Buffer): Buffer {
  return Buffer.from(`id: ${seq}\nevent: ${type}\ndata: {"data":"${bytes.toString("base64")}"}\n\n`, "latin1");
}
