import { describe, expect, it } from "vitest";
import { type Frame, RingBuffer } from "./ring-buffer.js";

const frame = (seq: number, size = 10): Frame => ({
  seq,
  type: "stdout",
  base64: true,
  bytes: Buffer.alloc(size, seq % 256),
});
const seqs = (frames: readonly Frame[]) => frames.map((f) => f.seq);

describe("RingBuffer", () => {
  it("replays every frame after a sequence number, in order, without a gap while nothing was evicted", () => {
    const ring = new RingBuffer(1000);
    for (let seq = 1; seq <= 5; seq++) ring.append(frame(seq));
    expect(seqs(ring.replay(0).frames)).toEqual([1, 2, 3, 4, 5]);
    expect(seqs(ring.replay(3).frames)).toEqual([4, 5]);
    expect(ring.replay(5).frames).toEqual([]);
    expect(ring.replay(0).gap).toBeUndefined();
  });

  it("evicts the oldest frames past the byte capacity and returns them", () => {
    const ring = new RingBuffer(30);
    expect(ring.append(frame(1))).toEqual([]);
    ring.append(frame(2));
    ring.append(frame(3));
    expect(seqs(ring.append(frame(4)))).toEqual([1]);
    expect(seqs(ring.append(frame(5, 25)))).toEqual([2, 3, 4]);
    expect(ring.evictedThrough).toBe(4);
    expect(ring.retainedBytes).toBe(25);
  });

  it("reports exactly what a replay asked for but was evicted", () => {
    const ring = new RingBuffer(30);
    for (let seq = 1; seq <= 10; seq++) ring.append(frame(seq));
    const replay = ring.replay(2);
    expect(replay.gap).toEqual({ fromSeq: 3, toSeq: 7 });
    expect(seqs(replay.frames)).toEqual([8, 9, 10]);
    expect(ring.replay(7).gap).toBeUndefined();
  });

  it("always keeps the final frame, whatever is evicted", () => {
    const ring = new RingBuffer(20);
    for (let seq = 1; seq <= 4; seq++) ring.append(frame(seq));
    ring.appendFinal(frame(5, 100));
    expect(seqs(ring.replay(0).frames)).toEqual([3, 4, 5]);
    expect(ring.dropAllButFinal().map((f) => f.seq)).toEqual([3, 4]);
    const replay = ring.replay(0);
    expect(replay.gap).toEqual({ fromSeq: 1, toSeq: 4 });
    expect(seqs(replay.frames)).toEqual([5]);
    expect(() => ring.append(frame(6))).toThrow(/final/);
  });

  it("refuses frames out of order", () => {
    const ring = new RingBuffer(100);
    ring.append(frame(1));
    expect(() => ring.append(frame(3))).toThrow(/out of order/);
  });

  it("limits a replay to maxFrames and can continue from there", () => {
    const ring = new RingBuffer(10_000);
    for (let seq = 1; seq <= 100; seq++) ring.append(frame(seq));
    const first = ring.replay(0, 40);
    expect(seqs(first.frames)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(ring.replay(40, 100).frames[0]?.seq).toBe(41);
  });

  it("stays correct across many evictions and compactions", () => {
    const ring = new RingBuffer(500);
    for (let seq = 1; seq <= 20_000; seq++) ring.append(frame(seq));
    expect(ring.evictedThrough).toBe(19_950);
    expect(seqs(ring.replay(19_990).frames)).toEqual(Array.from({ length: 10 }, (_, i) => 19_991 + i));
  });
});
