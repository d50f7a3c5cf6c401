import { systemClock } from "@sbx/edge";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HardDeadline, OrphanDeadline } from "./deadline.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("OrphanDeadline", () => {
  it("expires a window after creation when nobody ever attaches", () => {
    const expire = vi.fn();
    new OrphanDeadline(1000, expire, systemClock);
    vi.advanceTimersByTime(999);
    expect(expire).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(expire).toHaveBeenCalledOnce();
  });

  it("never expires while a consumer is attached, however long", () => {
    const expire = vi.fn();
    const deadline = new OrphanDeadline(1000, expire, systemClock);
    deadline.attach();
    vi.advanceTimersByTime(24 * 3600 * 1000);
    expect(expire).not.toHaveBeenCalled();
    expect(deadline.armed).toBe(false);
  });

  it("starts the window when the last consumer leaves, not the first", () => {
    const expire = vi.fn();
    const deadline = new OrphanDeadline(1000, expire, systemClock);
    const a = deadline.attach();
    const b = deadline.attach();
    a();
    vi.advanceTimersByTime(5000);
    expect(expire).not.toHaveBeenCalled();
    b();
    expect(deadline.consumers).toBe(0);
    vi.advanceTimersByTime(1000);
    expect(expire).toHaveBeenCalledOnce();
  });

  it("is re-armed from zero by an attach during the window", () => {
    const expire = vi.fn();
    const deadline = new OrphanDeadline(1000, expire, systemClock);
    vi.advanceTimersByTime(900);
    const detach = deadline.attach();
    vi.advanceTimersByTime(900);
    detach();
    vi.advanceTimersByTime(900);
    expect(expire).not.toHaveBeenCalled();
    vi.advanceTimersByTime(100);
    expect(expire).toHaveBeenCalledOnce();
  });

  it("ignores a second detach of the same consumer", () => {
    const deadline = new OrphanDeadline(1000, vi.fn(), systemClock);
    const a = deadline.attach();
    deadline.attach();
    a();
    a();
    expect(deadline.consumers).toBe(1);
  });

  it("never fires once stopped", () => {
    const expire = vi.fn();
    const deadline = new OrphanDeadline(1000, expire, systemClock);
    deadline.stop();
    deadline.attach()();
    vi.advanceTimersByTime(10_000);
    expect(expire).not.toHaveBeenCalled();
  });
});

describe("HardDeadline", () => {
  it("fires once after its time unless stopped", () => {
    const fired = vi.fn();
    new HardDeadline(500, fired, systemClock);
    const stopped = vi.fn();
    new HardDeadline(500, stopped, systemClock).stop();
    vi.advanceTimersByTime(10_000);
    expect(fired).toHaveBeenCalledOnce();
    expect(stopped).not.toHaveBeenCalled();
  });
});
