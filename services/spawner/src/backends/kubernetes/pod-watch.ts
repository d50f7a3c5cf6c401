import { type Informer, makeInformer, type ObjectCache, type V1Pod } from "@kubernetes/client-node";
import type { Logger } from "@sbx/edge";
import type { BackendSession } from "../backend.js";
import { BackendNotFoundError, ImageUnavailableError, StartFailedError, StartTimeoutError } from "../backend-errors.js";
import type { KubeApi } from "./kube-api.js";
import { sessionOfPod } from "./pod-state.js";

type PodEvent = "add" | "update" | "delete";
type PodHandler = (event: PodEvent, pod: V1Pod) => void;

/**
 * One informer over the deployment's Pods (client-node's list-then-watch with its own
 * reconnects, and a cache), shared by everything that follows Pods: the change feed, a create
 * waiting for its Pod to run, a stop waiting for its Pod to go. Started on first use; after an
 * error it starts again a second later, from the last version it saw (or a fresh listing).
 */
export class PodWatch {
  private informer: (Informer<V1Pod> & ObjectCache<V1Pod>) | undefined;
  private started: Promise<void> | undefined;
  private readonly handlers = new Set<PodHandler>();
  private closed = false;

  constructor(
    private readonly api: KubeApi,
    private readonly log: Logger,
  ) {}

  /** Calls `handler` for every change of the deployment's Pods until the returned function is called. */
  subscribe(handler: PodHandler): () => void {
    this.handlers.add(handler);
    void this.start();
    return () => this.handlers.delete(handler);
  }

  /**
   * Follows a new Pod (the one of `uid` when known) until it runs with an address, or fails, or
   * `signal` fires. A Pod that fails to be scheduled may wait `unschedulableGraceMs` for room.
   */
  untilRunning(
    id: string,
    uid: string | undefined,
    signal: AbortSignal,
    unschedulableGraceMs: number,
  ): Promise<BackendSession> {
    const name = this.api.podName(id);
    const started = Date.now();
    return new Promise<BackendSession>((resolve, reject) => {
      let settled = false;
      // The Pod followed: the one created, or (another replica's) the first one of that name seen alive.
      let followed = uid;
      const finish = (result: { session?: BackendSession; error?: Error }) => {
        if (settled) return;
        settled = true;
        unsubscribe();
        signal.removeEventListener("abort", onAbort);
        if (result.session) resolve(result.session);
        else reject(result.error);
      };
      const onAbort = () => finish({ error: new StartTimeoutError("the session Pod did not run in time") });
      const judge = (event: PodEvent, pod: V1Pod) => {
        if (pod.metadata?.name !== name) return;
        if (followed === undefined && !pod.metadata.deletionTimestamp) followed = pod.metadata.uid;
        if (pod.metadata.uid !== followed) return; // an earlier Pod of that name, going away
        if (event === "delete") return finish({ error: new BackendNotFoundError(`Pod ${name} was deleted`) });
        const session = sessionOfPod(pod);
        if (!session) return;
        const { state } = session;
        if (state.phase === "running" && session.endpoint) return finish({ session });
        if (state.phase === "terminating")
          return finish({ error: new BackendNotFoundError(`Pod ${name} is being deleted`) });
        if (state.phase !== "failed") return;
        if (state.reason.code === "unschedulable" && Date.now() - started < unschedulableGraceMs) return;
        finish({
          error:
            state.reason.code === "image-unavailable"
              ? new ImageUnavailableError(pod.spec?.containers[0]?.image ?? "", state.reason.message)
              : state.reason.code === "removed"
                ? new BackendNotFoundError(`Pod ${name} was deleted`)
                : new StartFailedError(state.reason),
        });
      };
      const unsubscribe = this.subscribe(judge);
      signal.addEventListener("abort", onAbort, { once: true });
      if (signal.aborted) return onAbort();
      // It may have changed before we listened: the cache has it as it is now.
      const cached = this.cached(name);
      if (cached) judge("update", cached);
    });
  }

  /** Waits until no Pod of session `id`'s name is left (or `ms` passed); false when one still is. */
  untilGone(id: string, ms: number): Promise<boolean> {
    const name = this.api.podName(id);
    return new Promise<boolean>((resolve) => {
      const finish = (gone: boolean) => {
        clearTimeout(timer);
        unsubscribe();
        resolve(gone);
      };
      const timer = setTimeout(() => finish(this.cached(name) === undefined), ms);
      const unsubscribe = this.subscribe((event, pod) => {
        if (event === "delete" && pod.metadata?.name === name) finish(true);
      });
      void this.start().then(() => {
        if (this.cached(name) === undefined) finish(true);
      });
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handlers.clear();
    await this.informer?.stop();
  }

  private cached(name: string): V1Pod | undefined {
    return this.informer?.get(name, this.api.namespace);
  }

  private start(): Promise<void> {
    if (this.started) return this.started;
    const path = `/api/v1/namespaces/${this.api.namespace}/pods`;
    const informer = makeInformer<V1Pod>(
      this.api.config,
      path,
      () => this.api.core.listNamespacedPod({ namespace: this.api.namespace, labelSelector: this.api.selector() }),
      this.api.selector(),
    );
    for (const event of ["add", "update", "delete"] as const) {
      informer.on(event, (pod) => {
        for (const handler of this.handlers) handler(event, pod);
      });
    }
    informer.on("error", (error) => {
      if (this.closed) return;
      this.log.warn({ err: error }, "Kubernetes Pod watch broke; following again in 1 s");
      setTimeout(() => {
        if (!this.closed)
          void informer.start().catch((again: unknown) => this.log.warn({ err: again }, "watch restart"));
      }, 1000).unref();
    });
    this.informer = informer;
    this.started = informer.start().catch((error: unknown) => {
      this.log.warn({ err: error }, "could not start the Pod watch");
    });
    return this.started;
  }
}
