import { encodeSseEvent, SSE_HEARTBEAT } from "@sbx/protocol";
import type { Clock, Timer } from "../clock.js";
import type { Exec, ExecConsumer } from "./exec.js";

export interface EventStreamOptions {
  /** Replay events with seq greater than this. */
  afterSeq: number;
  /** Keep following live events until the exit event (false: replay what is there, then end). */
  follow: boolean;
  heartbeatMs: number;
  clock: Clock;
  onCut?: () => void;
}

const encoder = new TextEncoder();
const HEARTBEAT = encoder.encode(SSE_HEARTBEAT);
/** Frames handed to the HTTP layer per pull; it asks again when the socket drains. */
const FRAMES_PER_PULL = 64;
/** Bytes queued between this stream and the socket before pulls stop. */
const QUEUE_BYTES = 1024 * 1024;

/**
 * An exec's events as an SSE byte stream for one consumer. The consumer reads
 * the exec's shared ring by cursor, so following costs no memory of its own
 * and a slow reader never slows the process or other readers. A consumer so
 * slow that output it has not read yet is evicted is cut off; it re-attaches
 * from its last event id and is told exactly what it missed (a gap).
 */
export function execEventStream(exec: Exec, options: EventStreamOptions): ReadableStream<Uint8Array> {
  let cursor: number | undefined;
  let pendingWake: (() => void) | undefined;
  let detach: (() => void) | undefined;
  let heartbeat: Timer | undefined;
  let done = false;
  let controllerRef: ReadableStreamDefaultController<Uint8Array> | undefined;

  const stop = () => {
    done = true;
    if (heartbeat !== undefined) options.clock.clearTimeout(heartbeat);
    detach?.();
    detach = undefined;
    pendingWake?.();
  };

  const consumer: ExecConsumer = {
    get cursor() {
      return cursor;
    },
    wake() {
      const wake = pendingWake;
      pendingWake = undefined;
      wake?.();
    },
    cut() {
      if (done) return;
      stop();
      options.onCut?.();
      controllerRef?.error(new Error(`consumer of exec ${exec.execId} fell behind the replay buffer`));
    },
  };

  const beat = () => {
    const controller = controllerRef;
    // Only on an idle queue: a stalled reader must not accumulate heartbeats.
    if (!done && controller && controller.desiredSize === QUEUE_BYTES) controller.enqueue(HEARTBEAT);
    if (!done) heartbeat = options.clock.setTimeout(beat, options.heartbeatMs);
  };

  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        controllerRef = controller;
        if (options.follow) detach = exec.addConsumer(consumer);
        heartbeat = options.clock.setTimeout(beat, options.heartbeatMs);
      },
      async pull(controller) {
        while (!done) {
          const { gap, frames } = exec.read(cursor ?? options.afterSeq, FRAMES_PER_PULL);
          if (gap) {
            controller.enqueue(encoder.encode(encodeSseEvent({ seq: gap.toSeq, type: "gap", data: gap })));
            cursor = gap.toSeq;
          } else if (cursor === undefined) {
            cursor = options.afterSeq;
          }
          for (const frame of frames) controller.enqueue(frame.bytes);
          const last = frames.at(-1);
          if (last) cursor = last.seq;
          if (!exec.running && cursor === exec.lastSeq) {
            stop();
            controller.close();
            return;
          }
          if (!options.follow && frames.length < FRAMES_PER_PULL) {
            stop();
            controller.close();
            return;
          }
          if (gap || frames.length > 0) return;
          await new Promise<void>((resolve) => {
            pendingWake = resolve;
          });
        }
      },
      cancel() {
        stop();
      },
    },
    new ByteLengthQueuingStrategy({ highWaterMark: QUEUE_BYTES }),
  );
}
