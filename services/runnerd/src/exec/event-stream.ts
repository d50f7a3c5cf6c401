import type { Clock, Timer } from "@sbx/edge";
import { type EventFraming, storedSize } from "@sbx/protocol";
import type { Exec, ExecConsumer } from "./exec.js";
import type { Frame } from "./ring-buffer.js";

export interface EventStreamOptions {
  /** How events go on the wire: SSE, or binary frames. */
  framing: EventFraming;
  /** Replay events with seq greater than this. */
  afterSeq: number;
  /** Keep following live events until the exit event (false: replay what is there, then end). */
  follow: boolean;
  /** Bytes of evicted-but-unread events this consumer may hold before it is cut off. */
  backlogBytes: number;
  heartbeatMs: number;
  clock: Clock;
  onCut?: () => void;
}

const CUT_NOTICE = "fell behind the output; re-attach with Last-Event-ID to resume";
/** Frames handed to the HTTP layer per pull; it asks again when the socket drains. */
const FRAMES_PER_PULL = 64;
/** Bytes queued between this stream and the socket before pulls stop. */
const QUEUE_BYTES = 1024 * 1024;

/**
 * An exec's events as an SSE byte stream for one consumer. The consumer reads
 * the exec's shared ring by cursor, so following costs no memory of its own
 * and a slow reader never slows the process or other readers. Events evicted
 * from the ring before this consumer read them move to its private backlog;
 * past `backlogBytes` it is cut off (the stream ends without an exit event)
 * and can re-attach from its last event id, learning exactly what it missed.
 */
export function execEventStream(exec: Exec, options: EventStreamOptions): ReadableStream<Uint8Array> {
  /** Seq of the newest frame handed out; undefined before the first read. */
  let cursor: number | undefined;
  let backlog: Frame[] = [];
  let backlogHead = 0;
  let backlogBytes = 0;
  let pendingWake: (() => void) | undefined;
  let detach: (() => void) | undefined;
  let heartbeat: Timer | undefined;
  let done = false;
  let closed = false;
  let controllerRef: ReadableStreamDefaultController<Uint8Array> | undefined;
  const framing = options.framing;
  const send = (controller: ReadableStreamDefaultController<Uint8Array>, frame: Frame) => {
    for (const part of framing.encode(frame)) controller.enqueue(part);
  };

  const stop = () => {
    done = true;
    backlog = [];
    if (heartbeat !== undefined) options.clock.clearTimeout(heartbeat);
    detach?.();
    detach = undefined;
    const wake = pendingWake;
    pendingWake = undefined;
    wake?.();
  };

  const consumer: ExecConsumer = {
    wake() {
      const wake = pendingWake;
      pendingWake = undefined;
      wake?.();
    },
    evicted(frames) {
      // Before the first read the replay starts with a gap instead.
      if (done || cursor === undefined) return;
      const last = backlog.at(-1)?.seq ?? cursor;
      for (const frame of frames) {
        if (frame.seq <= last) continue;
        backlog.push(frame);
        backlogBytes += storedSize(frame);
      }
      if (backlogBytes > options.backlogBytes && controllerRef) {
        options.onCut?.();
        // What is already queued still reaches the client, then the stream ends without an exit event.
        controllerRef.enqueue(options.framing.notice(CUT_NOTICE));
        finish(controllerRef);
      }
    },
  };

  const beat = () => {
    const controller = controllerRef;
    // Only on an idle queue: a stalled reader must not accumulate heartbeats.
    if (!done && controller && controller.desiredSize === QUEUE_BYTES) controller.enqueue(options.framing.heartbeat);
    if (!done) heartbeat = options.clock.setTimeout(beat, options.heartbeatMs);
  };

  const finish = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    stop();
    if (closed) return;
    closed = true;
    controller.close();
  };

  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        controllerRef = controller;
        if (options.follow) detach = exec.addConsumer(consumer);
        heartbeat = options.clock.setTimeout(beat, options.heartbeatMs);
      },
      async pull(controller) {
        for (;;) {
          if (done) {
            finish(controller);
            return;
          }
          // Frames that left the ring unread come first, in order.
          if (backlogHead < backlog.length) {
            let handed = 0;
            while (backlogHead < backlog.length && handed < FRAMES_PER_PULL) {
              const frame = backlog[backlogHead++];
              if (!frame) continue;
              send(controller, frame);
              backlogBytes -= storedSize(frame);
              cursor = frame.seq;
              handed++;
            }
            if (backlogHead === backlog.length) {
              backlog = [];
              backlogHead = 0;
            }
            return;
          }
          const { gap, frames } = exec.read(cursor ?? options.afterSeq, FRAMES_PER_PULL);
          if (gap) {
            send(controller, { seq: gap.toSeq, type: "gap", json: JSON.stringify(gap) });
            cursor = gap.toSeq;
          } else if (cursor === undefined) {
            cursor = options.afterSeq;
          }
          for (const frame of frames) send(controller, frame);
          const last = frames.at(-1);
          if (last) cursor = last.seq;
          const caughtUp = frames.length < FRAMES_PER_PULL;
          if (caughtUp && (!exec.running || !options.follow) && cursor === exec.lastSeq) {
            finish(controller);
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
