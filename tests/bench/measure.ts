// What the benchmarks measure with: order statistics, timing, alternating the sides compared,
// an HTTP keep-alive client, and SSE and binary-frame readers that count decoded payload bytes.
import http from "node:http";
import { BinaryFrameDecoder, EXEC_FRAMES_MEDIA_TYPE, type ExecEvent } from "@sbx/protocol";
import { createParser } from "eventsource-parser";

export function percentile(sorted: number[], p: number): number {
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index] ?? Number.NaN;
}

export function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  return { median: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99) };
}

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

export const ms = (v: number) => `${v.toFixed(2)} ms`;

/** One keep-alive connection, as a real client would hold. */
export const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

export function request(
  url: string,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  onData: (chunk: string) => void,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent, headers }, (response) => {
      response.setEncoding("utf8");
      response.on("data", onData);
      response.on("end", () => resolve(response.statusCode ?? 0));
      response.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/**
 * Reads an exec's SSE stream to its end with eventsource-parser (as the SDK
 * does) and returns the decoded stdout payload bytes; fails unless the exec
 * completed with no gap.
 */
export async function readSsePayload(send: (onData: (chunk: string) => void) => Promise<number>): Promise<number> {
  let bytes = 0;
  let exit = "";
  let gap = false;
  const parser = createParser({
    onEvent: (event) => {
      if (event.event === "stdout") {
        const data: unknown = JSON.parse(event.data);
        if (typeof data === "object" && data !== null) {
          if ("text" in data && typeof data.text === "string") bytes += Buffer.byteLength(data.text);
          else if ("data" in data && typeof data.data === "string") bytes += Buffer.from(data.data, "base64").length;
        }
      } else if (event.event === "exit") exit = event.data;
      else if (event.event === "gap") gap = true;
    },
  });
  await send((chunk) => parser.feed(chunk));
  if (!exit.includes('"completed"') || gap) throw new Error(`stream incomplete (gap: ${gap}, exit: ${exit || "none"})`);
  return bytes;
}

/**
 * One measured operation: it runs once and returns how long its measured part took, in ms, so
 * that set-up and clean-up (removing what the last run left, deleting a session) stay outside
 * the clock on every side alike. `whole` times all of a function.
 */
export type Sample = () => Promise<number>;

export const whole =
  (fn: () => Promise<unknown>): Sample =>
  () =>
    timed(fn);

export interface AlternationOptions {
  /** Samples kept of each operation. */
  runs: number;
  /** Runs of one operation in a row before the next takes its turn (1: one by one). */
  block?: number;
  /** Rounds of every operation run first and not kept (caches, JIT, image layers). */
  warmup?: number;
}

/**
 * The one way the benchmarks compare sides: each operation runs `runs` times, in turns of
 * `block`, and which one goes first rotates from turn to turn (with two sides: ours first, then
 * theirs first, and so on). Drift on a shared machine then hits every side alike, and no side's
 * after-effects (an engine's clean-up, a refill) always land on the same other one. Returns the
 * samples of each operation, in the order given.
 */
export async function measureAlternating(
  operations: Sample[],
  { runs, block = 1, warmup = 0 }: AlternationOptions,
): Promise<number[][]> {
  for (let round = 0; round < warmup; round++) {
    for (let k = 0; k < operations.length; k++) await operations[(round + k) % operations.length]?.();
  }
  const samples = operations.map(() => [] as number[]);
  for (let done = 0, turn = 0; done < runs; done += block, turn++) {
    for (let k = 0; k < operations.length; k++) {
      const index = (turn + k) % operations.length;
      const operation = operations[index];
      const into = samples[index];
      if (!operation || !into) continue;
      for (let i = 0; i < Math.min(block, runs - done); i++) into.push(await operation());
    }
  }
  return samples;
}

/**
 * Reads an exec's binary frame stream to its end with the protocol's decoder
 * (as the SDK does) and returns the stdout payload bytes; fails unless the
 * exec completed with no gap.
 */
export function readFramesPayload(url: string, headers: Record<string, string>, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const decoder = new BinaryFrameDecoder();
    let bytes = 0;
    let exit: ExecEvent | undefined;
    let gap = false;
    const req = http.request(url, { method: "POST", agent, headers }, (response) => {
      if (!response.headers["content-type"]?.startsWith(EXEC_FRAMES_MEDIA_TYPE)) {
        reject(new Error(`asked for frames, got ${response.headers["content-type"]}`));
        response.resume();
        return;
      }
      response.on("data", (chunk: Buffer) => {
        for (const frame of decoder.push(chunk)) {
          if (frame.kind !== "event") continue;
          if (frame.event.type === "stdout") bytes += frame.payloadBytes;
          else if (frame.event.type === "exit") exit = frame.event;
          else if (frame.event.type === "gap") gap = true;
        }
      });
      response.on("end", () => {
        const outcome = exit?.type === "exit" ? exit.data.outcome : "none";
        if (outcome !== "completed" || gap) reject(new Error(`stream incomplete (gap: ${gap}, exit: ${outcome})`));
        else resolve(bytes);
      });
      response.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}
