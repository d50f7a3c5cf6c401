import { setTimeout as delay } from "node:timers/promises";
import type { Logger } from "@sbx/edge";
import { LABELS } from "@sbx/protocol";
import { z } from "zod";
import type { BackendSession, SessionListener } from "../backend.js";
import { BackendUnavailableError } from "../backend-errors.js";
import { ownershipTerms } from "../core/session-meta.js";
import type { ContainerExits } from "./container-exits.js";
import { type DockerEngine, statusOf } from "./docker-engine.js";

/** Events after which a container no longer runs. */
const ENDING_ACTIONS: ReadonlySet<string> = new Set(["die", "oom", "destroy"]);

/**
 * The deployment's sessions as the engine's event stream tells of them: every container or
 * network event of ours becomes a fresh lookup of its session, reported in the order of the
 * events. The stream is followed again after a break, from the last event seen.
 */
export class DockerEventFeed {
  /** The latest lookup after an event, by session id (see `report`). */
  private readonly reporting = new Map<string, Promise<void>>();

  constructor(
    private readonly engine: DockerEngine,
    private readonly exits: ContainerExits,
    private readonly find: (id: string) => Promise<BackendSession | undefined>,
    private readonly log: Logger,
  ) {}

  follow(listener: SessionListener): () => void {
    const controller = new AbortController();
    // Events from this moment on, including those that happen while the stream connects, and
    // after a break, those since the last one seen: the engine replays them.
    let since = Date.now() / 1000;
    const follow = async () => {
      while (!controller.signal.aborted) {
        try {
          const stream = await this.engine.docker.getEvents({
            since: Math.floor(since * 1000) / 1000,
            // Container events carry the container's labels; network events (a container
            // disconnected from the sessions' bridge) carry the network's, which are ours too.
            filters: { type: ["container", "network"], label: ownershipTerms(this.engine.deployment) },
            abortSignal: controller.signal,
          });
          let pending = "";
          for await (const chunk of stream) {
            pending += chunk.toString();
            let newline = pending.indexOf("\n");
            while (newline >= 0) {
              const event = parseEvent(pending.slice(0, newline));
              pending = pending.slice(newline + 1);
              newline = pending.indexOf("\n");
              if (event === undefined) continue;
              since = Math.max(since, event.timeNano / 1e9);
              this.take(event, listener);
            }
          }
        } catch (error) {
          if (controller.signal.aborted) return;
          this.log.warn({ err: error }, "Docker event stream broke; following again in 1 s");
        }
        await delay(1000, undefined, { signal: controller.signal }).catch(() => undefined);
      }
    };
    void follow();
    return () => controller.abort();
  }

  private take(event: DockerEvent, listener: SessionListener): void {
    if (event.Type === "container") this.exits.forget(event.Actor.ID);
    const id = event.Actor.Attributes[LABELS.sessionId];
    const ending = ENDING_ACTIONS.has(event.Action);
    // A pool member's container speaks for the session that claimed it, if one did.
    if (id !== undefined && event.Actor.Attributes[LABELS.pool] !== undefined) {
      void this.reportClaimed(id, ending, listener);
    } else if (id !== undefined) {
      this.report(id, ending, listener);
    }
    const container = event.Type === "network" ? event.Actor.Attributes.container : undefined;
    if (container !== undefined) void this.reportContainer(container, listener);
  }

  private async reportClaimed(memberId: string, ending: boolean, listener: SessionListener): Promise<void> {
    try {
      const claim = await this.engine.docker.getVolume(this.engine.claimName(memberId)).inspect();
      const id = claim.Labels?.[LABELS.sessionId];
      if (id !== undefined) this.report(id, ending, listener);
    } catch (error) {
      if (statusOf(error) === 404) return; // an unclaimed member: no session to speak of
      this.log.warn({ err: error }, "could not look up the session of a pool member after an event");
    }
  }

  /** A network event names a container, not a session: find whose it is. */
  private async reportContainer(containerId: string, listener: SessionListener): Promise<void> {
    try {
      const info = await this.engine.docker.getContainer(containerId).inspect();
      const id = info.Config.Labels?.[LABELS.sessionId];
      if (id !== undefined && info.Config.Labels?.[LABELS.pool] !== undefined) {
        await this.reportClaimed(id, false, listener);
      } else if (id !== undefined) this.report(id, false, listener);
    } catch (error) {
      if (statusOf(error) !== 404) this.log.warn({ err: error }, "could not look up a container after a network event");
    }
  }

  /**
   * Looks a session up after an event and reports it, stamped with when the lookup began.
   * Lookups of one session run one after another, so reports land in the order of the events
   * and the last one reflects the latest state.
   */
  private report(id: string, ending: boolean, listener: SessionListener): void {
    const previous = this.reporting.get(id) ?? Promise.resolve();
    const next = previous.then(async () => {
      try {
        let observedAt = performance.now();
        let session = await this.find(id);
        // The engine announces a death before its listing shows it: look again until it does.
        for (let attempt = 0; ending && session && isAlive(session) && attempt < 30; attempt++) {
          await delay(100);
          observedAt = performance.now();
          session = await this.find(id);
        }
        listener(id, session, observedAt);
      } catch (error) {
        this.log.warn({ sessionId: id, err: error }, "could not look up a session after a Docker event");
      }
    });
    this.reporting.set(id, next);
    void next.then(() => {
      if (this.reporting.get(id) === next) this.reporting.delete(id);
    });
  }
}

function isAlive(session: BackendSession): boolean {
  return session.state.phase === "running" || session.state.phase === "starting";
}

/** The part of a Docker event that matters here: the container's labels travel as attributes. */
const DockerEventSchema = z.object({
  Type: z.string(),
  Action: z.string(),
  timeNano: z.number(),
  Actor: z.object({ ID: z.string(), Attributes: z.record(z.string(), z.string()) }),
});
type DockerEvent = z.infer<typeof DockerEventSchema>;

function parseEvent(line: string): DockerEvent | undefined {
  if (line.trim() === "") return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch (error) {
    throw new BackendUnavailableError("the Docker event stream sent something other than JSON", { cause: error });
  }
  const event = DockerEventSchema.safeParse(parsed);
  return event.success ? event.data : undefined;
}
