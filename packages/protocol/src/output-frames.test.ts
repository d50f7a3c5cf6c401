import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { encodeSseEvent } from "./events.js";
import { encodeBase64OutputFrame, encodeUtf8OutputFrame } from "./output-frames.js";

const reference = (seq: number, text: string) => Buffer.from(encodeSseEvent({ seq, type: "stdout", data: { text } }));

describe("fast output frames", () => {
  it.each([
    ["plain text", "hello world\n"],
    ["quotes and backslashes", 'say "hi" \\ C:\\path\\'],
    ["every ASCII control character", Array.from({ length: 32 }, (_, i) => String.fromCharCode(i)).join("")],
    ["ANSI colour codes", "\u001b[31mred\u001b[0m\r\n\ttab"],
    ["multi-byte characters", "ünïcödé 漢字 😀 \u2028\u2029 \u007f"],
    ["the empty string", ""],
  ])("encode %s exactly as encodeSseEvent does", (_name, text) => {
    expect(encodeUtf8OutputFrame(7, "stdout", Buffer.from(text)).equals(reference(7, text))).toBe(true);
  });

  it("match encodeSseEvent on random valid UTF-8", () => {
    for (let i = 0; i < 200; i++) {
      const codePoints = Array.from({ length: 64 }, () => {
        const pick = Math.random();
        if (pick < 0.5) return Math.floor(Math.random() * 128);
        if (pick < 0.8) return 0x80 + Math.floor(Math.random() * 0x780);
        if (pick < 0.95) return 0x800 + Math.floor(Math.random() * (0xd800 - 0x800));
        return 0x10000 + Math.floor(Math.random() * 0xfffff);
      });
      const text = String.fromCodePoint(...codePoints);
      expect(encodeUtf8OutputFrame(i + 1, "stdout", Buffer.from(text)).equals(reference(i + 1, text))).toBe(true);
    }
  });

  it("encode base64 frames exactly as encodeSseEvent does", () => {
    const bytes = randomBytes(1000);
    const expected = encodeSseEvent({ seq: 3, type: "stderr", data: { data: bytes.toString("base64") } });
    expect(encodeBase64OutputFrame(3, "stderr", bytes).toString()).toBe(expected);
  });
});
