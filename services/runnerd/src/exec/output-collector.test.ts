import { describe, expect, it } from "vitest";
import { OutputCollector } from "./output-collector.js";

describe("OutputCollector", () => {
  it("keeps everything under the cap", () => {
    const collector = new OutputCollector(100);
    collector.onOutput("stdout", Buffer.from("hello "));
    collector.onOutput("stdout", Buffer.from("world"));
    collector.onOutput("stderr", Buffer.from("err"));
    expect(collector.result("utf8")).toEqual({ stdout: "hello world", stderr: "err", truncated: false });
  });

  it("keeps the newest bytes past the cap, starting at a character boundary", () => {
    const collector = new OutputCollector(10);
    for (const piece of ["0123456789", "ab€€"]) collector.onOutput("stdout", Buffer.from(piece));
    const { stdout, truncated } = collector.result("utf8");
    expect(truncated).toBe(true);
    expect(stdout).toBe("89ab€€".slice(-stdout.length));
    expect(stdout).not.toContain("\uFFFD");
    expect(Buffer.byteLength(stdout)).toBeLessThanOrEqual(10);
  });

  it("returns the newest raw bytes in base64 mode", () => {
    const collector = new OutputCollector(4);
    collector.onOutput("stdout", Buffer.from([1, 2, 3]));
    collector.onOutput("stdout", Buffer.from([4, 5, 6]));
    expect(Buffer.from(collector.result("base64").stdout, "base64")).toEqual(Buffer.from([3, 4, 5, 6]));
  });
});
