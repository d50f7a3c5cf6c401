import { type StoredEvent, storedSize } from "@sbx/protocol";

const NONE: readonly Frame[] = Object.freeze([]);

/** One event as kept: output as raw bytes, other events as JSON; each consumer encodes it for its wire. */
export type Frame = StoredEvent;

/** A ring's retained frames, oldest first, and what came before them. */
export interface RingSnapshot {
  evictedThrough: number;
  frames: Frame[];
  final: Frame | undefined;
}

export interface Replay {
  /** Events the caller asked for that were already evicted: `fromSeq..toSeq` inclusive. */
  gap: { fromSeq: number; toSeq: number } | undefined;
  frames: Frame[];
}

/**
 * The newest events of one exec, bounded by bytes. Eviction is strictly
 * oldest-first, so what is gone is always the prefix `1..evictedThrough`,
 * which makes gaps exact. A final frame (the exit event) is pinned: it is
 * never evicted and does not count against the capacity.
 */
export class RingBuffer {
  private frames: Array<Frame | undefined> = [];
  private head = 0;
  private bytes = 0;
  private final: Frame | undefined;
  private last = 0;
  private evicted = 0;

  constructor(private readonly capacityBytes: number) {}

  /** Sequence number of the newest frame (0 when empty). */
  get lastSeq(): number {
    return this.last;
  }

  /** Every frame with seq <= this has been evicted (0: nothing evicted). */
  get evictedThrough(): number {
    return this.evicted;
  }

  get retainedBytes(): number {
    return this.bytes;
  }

  get isFinal(): boolean {
    return this.final !== undefined;
  }

  /**
   * Appends the next frame (seq must be lastSeq + 1) and evicts the oldest
   * frames past the capacity. Returns the evicted frames, oldest first.
   */
  append(frame: Frame): readonly Frame[] {
    this.checkNext(frame);
    this.frames.push(frame);
    this.bytes += storedSize(frame);
    this.last = frame.seq;
    return this.evictOverflow();
  }

  /** Appends the last frame of the stream; it is kept whatever else is evicted. */
  appendFinal(frame: Frame): void {
    this.checkNext(frame);
    this.final = frame;
    this.last = frame.seq;
  }

  /** Drops every frame but the final one (finished execs past the output retention count); returns them. */
  dropAllButFinal(): readonly Frame[] {
    const dropped: Frame[] = [];
    for (let i = this.head; i < this.frames.length; i++) {
      const frame = this.frames[i];
      if (frame) dropped.push(frame);
    }
    const newest = dropped.at(-1);
    if (newest) this.evicted = newest.seq;
    this.frames = [];
    this.head = 0;
    this.bytes = 0;
    return dropped;
  }

  /** Frames after `afterSeq`, preceded by the gap if some of them were evicted. */
  replay(afterSeq: number, maxFrames = Number.POSITIVE_INFINITY): Replay {
    let gap: Replay["gap"];
    let from = afterSeq;
    if (from < this.evicted) {
      gap = { fromSeq: from + 1, toSeq: this.evicted };
      from = this.evicted;
    }
    const frames: Frame[] = [];
    const oldest = this.frames[this.head];
    if (oldest !== undefined) {
      // Sequence numbers are contiguous in the ring, so the index is arithmetic.
      let i = this.head + Math.max(0, from + 1 - oldest.seq);
      for (; i < this.frames.length && frames.length < maxFrames; i++) {
        const frame = this.frames[i];
        if (frame) frames.push(frame);
      }
    }
    if (this.final && this.final.seq > from && frames.length < maxFrames) frames.push(this.final);
    return { gap, frames };
  }

  /** Everything retained, for persisting the ring; `restore` rebuilds an equal one. */
  snapshot(): RingSnapshot {
    const frames: Frame[] = [];
    for (let i = this.head; i < this.frames.length; i++) {
      const frame = this.frames[i];
      if (frame) frames.push(frame);
    }
    return { evictedThrough: this.evicted, frames, final: this.final };
  }

  static restore(capacityBytes: number, snapshot: RingSnapshot): RingBuffer {
    const ring = new RingBuffer(capacityBytes);
    ring.evicted = snapshot.evictedThrough;
    ring.last = snapshot.evictedThrough;
    for (const frame of snapshot.frames) ring.append(frame);
    if (snapshot.final) ring.appendFinal(snapshot.final);
    return ring;
  }

  private checkNext(frame: Frame): void {
    if (this.final) throw new Error("ring buffer is final");
    if (frame.seq !== this.last + 1) throw new Error(`frame ${frame.seq} out of order after ${this.last}`);
  }

  private evictOverflow(): readonly Frame[] {
    if (this.bytes <= this.capacityBytes) return NONE;
    const evicted: Frame[] = [];
    while (this.bytes > this.capacityBytes && this.head < this.frames.length) {
      const oldest = this.frames[this.head];
      if (!oldest) break;
      this.frames[this.head] = undefined;
      this.head++;
      this.bytes -= storedSize(oldest);
      this.evicted = oldest.seq;
      evicted.push(oldest);
    }
    // Compact once the dead prefix dominates, keeping shifts amortised O(1).
    if (this.head > 1024 && this.head * 2 > this.frames.length) {
      this.frames = this.frames.slice(this.head);
      this.head = 0;
    }
    return evicted;
  }
}
