import { describe, expect, it } from "vitest";
import { completeLength, Utf8Chunker } from "./utf8-chunker.js";

describe("Utf8Chunker", () => {
  it("holds back an incomplete character until its remaining bytes arrive", () => {
    const euro = Buffer.from("€"); // e2 82 ac
    const chunker = new Utf8Chunker();
    expect(chunker.push(Buffer.concat([Buffer.from("a"), euro.subarray(0, 1)])).toString()).toBe("a");
    expect(chunker.push(euro.subarray(1, 2)).length).toBe(0);
    expect(chunker.push(Buffer.concat([euro.subarray(2), Buffer.from("b")])).toString()).toBe("€b");
    expect(chunker.end().length).toBe(0);
  });

  it("splits any text at any byte into pieces that decode without replacement characters", () => {
    const text = "plain, ünïcödé, 漢字, emoji 😀🎉, and more € signs";
    const bytes = Buffer.from(text);
    for (let size = 1; size <= 7; size++) {
      const chunker = new Utf8Chunker();
      let out = "";
      for (let i = 0; i < bytes.length; i += size) {
        const piece = chunker.push(bytes.subarray(i, i + size)).toString("utf8");
        expect(piece).not.toContain("\uFFFD");
        out += piece;
      }
      expect(out + chunker.end().toString()).toBe(text);
    }
  });

  it("hands back a truncated character at the end of the stream", () => {
    const chunker = new Utf8Chunker();
    chunker.push(Buffer.from([0x61, 0xf0, 0x9f]));
    expect([...chunker.end()]).toEqual([0xf0, 0x9f]);
  });

  it("treats stray continuation bytes as complete (they are invalid, not unfinished)", () => {
    expect(completeLength(Buffer.from([0x61, 0x80, 0x80, 0x80]))).toBe(4);
  });
});
