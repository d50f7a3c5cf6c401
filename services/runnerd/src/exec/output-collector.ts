import type { Encoding } from "@sbx/protocol";
import type { OutputStream, OutputTap } from "./exec.js";

class Tail {
  private chunks: Buffer[] = [];
  private bytes = 0;
  dropped = false;

  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    let first = this.chunks[0];
    while (first !== undefined && this.bytes - first.length >= this.cap) {
      this.chunks.shift();
      this.bytes -= first.length;
      this.dropped = true;
      first = this.chunks[0];
    }
  }

  /** The newest `cap` bytes; in utf8, starting at a character boundary. */
  render(encoding: Encoding): string {
    let all = Buffer.concat(this.chunks);
    if (all.length > this.cap) {
      all = all.subarray(all.length - this.cap);
      this.dropped = true;
      if (encoding === "utf8") {
        // Skip continuation bytes (10xxxxxx) of a character whose start was cut off.
        let start = 0;
        while (start < 3 && start < all.length && ((all[start] ?? 0) & 0xc0) === 0x80) start++;
        all = all.subarray(start);
      }
    }
    return all.toString(encoding);
  }
}

/** Collects the newest bytes of stdout and stderr, up to a cap each, for `?wait=true`. */
export class OutputCollector implements OutputTap {
  private readonly tails: Record<OutputStream, Tail>;

  constructor(capBytes: number) {
    this.tails = { stdout: new Tail(capBytes), stderr: new Tail(capBytes) };
  }

  onOutput(stream: OutputStream, chunk: Buffer): void {
    this.tails[stream].push(chunk);
  }

  result(encoding: Encoding): { stdout: string; stderr: string; truncated: boolean } {
    const stdout = this.tails.stdout.render(encoding);
    const stderr = this.tails.stderr.render(encoding);
    return { stdout, stderr, truncated: this.tails.stdout.dropped || this.tails.stderr.dropped };
  }
}
