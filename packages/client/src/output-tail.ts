/**
 * The newest output of one stream, bounded by characters, so waiting for an
 * exec that prints gigabytes never holds gigabytes.
 */
export class OutputTail {
  private parts: string[] = [];
  private length = 0;
  dropped = false;

  constructor(private readonly cap: number) {}

  push(text: string): void {
    this.parts.push(text);
    this.length += text.length;
    while (this.length > this.cap && this.parts.length > 0) {
      const first = this.parts[0] ?? "";
      const excess = this.length - this.cap;
      this.dropped = true;
      if (first.length <= excess) {
        this.parts.shift();
        this.length -= first.length;
      } else {
        // Never start on the second half of a surrogate pair.
        const cut = isLowSurrogate(first.charCodeAt(excess)) ? excess + 1 : excess;
        this.parts[0] = first.slice(cut);
        this.length -= cut;
      }
    }
  }

  toString(): string {
    return this.parts.join("");
  }
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}
