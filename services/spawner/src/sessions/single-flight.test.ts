import { describe, expect, it } from "vitest";
import { SingleFlight } from "./single-flight.js";

describe("single flight", () => {
  it("shares one call per key while it runs, and frees the key once it settled, failed or not", async () => {
    const flights = new SingleFlight<string, number>();
    let calls = 0;
    let release!: (value: number) => void;
    const first = flights.run("a", () => {
      calls++;
      return new Promise<number>((resolve) => {
        release = resolve;
      });
    });
    const second = flights.run("a", async () => {
      calls++;
      return 2;
    });
    const other = flights.run("b", async () => 3);
    expect(flights.has("a")).toBe(true);
    release(1);
    expect([await first, await second, await other]).toEqual([1, 1, 3]);
    expect(calls).toBe(1);
    expect(flights.has("a")).toBe(false);
    await expect(flights.run("a", async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await flights.run("a", async () => 4)).toBe(4);
  });
});
