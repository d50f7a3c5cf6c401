/**
 * Splits a byte stream into pieces that end on UTF-8 character boundaries:
 * an incomplete character at the end of a chunk is held back and prepended
 * to the next one, so no event ever carries half a character.
 */
export class Utf8Chunker {
  private carry: Buffer | undefined;

  /** Returns the complete part of everything received so far (possibly empty). */
  push(chunk: Buffer): Buffer {
    const data = this.carry ? Buffer.concat([this.carry, chunk]) : chunk;
    const cut = completeLength(data);
    this.carry = cut < data.length ? Buffer.from(data.subarray(cut)) : undefined;
    return cut === data.length ? data : data.subarray(0, cut);
  }

  /** What is still held back at the end of the stream (an incomplete, hence invalid, sequence). */
  end(): Buffer {
    const rest = this.carry ?? Buffer.alloc(0);
    this.carry = undefined;
    return rest;
  }
}

/** Length of the prefix of `data` that does not end inside a multi-byte character. */
export function completeLength(data: Buffer): number {
  const n = data.length;
  // A character is at most 4 bytes, so only the last 3 can start an unfinished one.
  for (let back = 1; back <= 3 && back <= n; back++) {
    const byte = data[n - back] ?? 0;
    if (byte < 0x80) return n; // ASCII: everything before it is complete
    if (byte >= 0xc0) {
      const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
      return back < need ? n - back : n;
    }
    // 10xxxxxx: a continuation byte, keep looking for its lead.
  }
  return n;
}
