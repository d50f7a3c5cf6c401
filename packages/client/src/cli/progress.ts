import { formatBytes } from "./output.js";

/** Where progress is drawn: stderr, or anything terminal-like. */
export interface ProgressOutput {
  isTTY?: boolean | undefined;
  columns?: number | undefined;
  write(text: string): unknown;
}

/**
 * A one-line progress display on stderr, only on a terminal and only for
 * transfers that take more than a moment; silent when piped.
 */
export class Progress {
  private readonly started = Date.now();
  private lastDraw = 0;
  private drawn = false;
  private readonly enabled: boolean;

  constructor(
    private readonly label: string,
    private readonly total: number | undefined,
    private readonly out: ProgressOutput = process.stderr,
  ) {
    this.enabled = out.isTTY === true;
  }

  update(bytes: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    // Quick transfers never show a bar; long ones redraw at most ten times a second.
    if (now - this.started < 700 || now - this.lastDraw < 100) return;
    this.lastDraw = now;
    this.drawn = true;
    const seconds = (now - this.started) / 1000;
    const rate = `${formatBytes(bytes / seconds)}/s`;
    let line: string;
    if (this.total !== undefined && this.total > 0) {
      const fraction = Math.min(1, bytes / this.total);
      const width = 24;
      const filled = Math.round(fraction * width);
      line = `${this.label} [${"#".repeat(filled)}${"-".repeat(width - filled)}] ${Math.round(fraction * 100)}% ${formatBytes(bytes)} of ${formatBytes(this.total)} ${rate}`;
    } else {
      line = `${this.label} ${formatBytes(bytes)} ${rate}`;
    }
    this.out.write(`\r${line.slice(0, (this.out.columns ?? 100) - 1)}\u001b[K`);
  }

  done(): void {
    if (this.drawn) this.out.write("\r\u001b[K");
  }
}
