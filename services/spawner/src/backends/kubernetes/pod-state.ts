import type { V1PersistentVolumeClaim, V1Pod } from "@kubernetes/client-node";
import { ANNOTATIONS, type FailureReason, LABELS } from "@sbx/protocol";
import type { BackendSession, BackendState, Endpoint } from "../backend.js";
import { sessionMetaOf } from "../core/session-meta.js";
import { exitDescription } from "../exit-description.js";
import { RUNNERD_PORT } from "../runtime-contract.js";

/** The session container's name in its Pod. */
export const RUNNERD_CONTAINER = "runnerd";
/** Set on a Pod before the spawner deletes it: a deletion without it was someone else's. */
export const DELETING_ANNOTATION = "sbx.dev/deleting";

/** Waiting reasons that mean the image cannot be had. */
const IMAGE_REASONS = new Set(["ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull", "InvalidImageName"]);
/** Waiting reasons that mean the container will never start as specified. */
const CONFIG_REASONS = new Set(["CreateContainerConfigError", "CreateContainerError", "RunContainerError"]);

/**
 * What a Pod says about its session: its lifecycle state and, once it runs,
 * where runnerd answers. One reading for creates, lookups and the change feed.
 */
export function podState(pod: V1Pod): { state: BackendState; endpoint: Endpoint | undefined } {
  const failed = (reason: FailureReason) => ({ state: { phase: "failed" as const, reason }, endpoint: undefined });
  const annotations = pod.metadata?.annotations ?? {};
  if (pod.metadata?.deletionTimestamp) {
    if (annotations[DELETING_ANNOTATION] !== undefined) return { state: { phase: "terminating" }, endpoint: undefined };
    return failed(removedReason(new Date(pod.metadata.deletionTimestamp).getTime()));
  }
  const status = pod.status;
  const container = status?.containerStatuses?.find((c) => c.name === RUNNERD_CONTAINER);
  const terminated = container?.state?.terminated;
  if (terminated) {
    const at = terminated.finishedAt ? new Date(terminated.finishedAt).getTime() : null;
    if (terminated.reason === "OOMKilled") {
      return failed({
        code: "oom-killed",
        message: `the session was killed for running out of memory${limitText(pod)}`,
        exitCode: terminated.exitCode,
        at,
      });
    }
    return failed({
      code: "exited",
      message: `the session container exited with ${exitDescription(terminated.exitCode)}${terminated.reason && terminated.reason !== "Error" && terminated.reason !== "Completed" ? ` (${terminated.reason})` : ""}`,
      exitCode: terminated.exitCode,
      at,
    });
  }
  if (status?.phase === "Failed" || status?.phase === "Succeeded") {
    if (status.reason === "Evicted") {
      return failed({
        code: "evicted",
        message: `the Pod was evicted: ${status.message ?? "node pressure"}`,
        at: null,
      });
    }
    return failed({ code: "other", message: `the Pod ended (${status.reason ?? status.phase})`, at: null });
  }
  const waiting = container?.state?.waiting;
  if (waiting?.reason && IMAGE_REASONS.has(waiting.reason)) {
    return failed({
      code: "image-unavailable",
      message: `the image cannot be had (${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""})`,
      at: null,
    });
  }
  if (waiting?.reason && CONFIG_REASONS.has(waiting.reason)) {
    return failed({
      code: "other",
      message: `the container cannot start (${waiting.reason}: ${waiting.message ?? ""})`,
      at: null,
    });
  }
  const scheduled = status?.conditions?.find((c) => c.type === "PodScheduled");
  if (scheduled?.status === "False" && scheduled.reason === "Unschedulable" && !waitsForVolume(scheduled.message)) {
    return failed({
      code: "unschedulable",
      message: `no node can run the session: ${scheduled.message ?? ""}`,
      at: null,
    });
  }
  if (status?.phase === "Unknown") {
    return failed({ code: "other", message: "the node running the session stopped reporting", at: null });
  }
  if (status?.phase === "Running" && status.podIP && container?.state?.running) {
    return { state: { phase: "running" }, endpoint: { host: status.podIP, port: RUNNERD_PORT } };
  }
  return { state: { phase: "starting" }, endpoint: undefined };
}

export function removedReason(at: number | null): FailureReason {
  return { code: "removed", message: "the session's Pod was deleted by someone other than the spawner", at };
}

/** The scheduler waits for a PersistentVolumeClaim to bind: that is starting, not failing. */
function waitsForVolume(message: string | undefined): boolean {
  return message !== undefined && /PersistentVolumeClaim|persistentvolumeclaim|volume node affinity/i.test(message);
}

function limitText(pod: V1Pod): string {
  const limit = pod.spec?.containers.find((c) => c.name === RUNNERD_CONTAINER)?.resources?.limits?.memory;
  return limit ? ` (limit ${limit})` : "";
}

/** A Pod as its session: undefined for a Pod without a session id. `claim`: its workspace's, which tells a stop. */
export function sessionOfPod(pod: V1Pod, claim?: V1PersistentVolumeClaim): BackendSession | undefined {
  const labels = pod.metadata?.labels ?? {};
  const id = labels[LABELS.sessionId];
  if (id === undefined) return undefined;
  const read = podState(pod);
  const stopping = read.state.phase === "terminating" && claim?.metadata?.annotations?.[ANNOTATIONS.stoppedAt];
  const { state, endpoint } = stopping ? { state: { phase: "stopping" as const }, endpoint: undefined } : read;
  return { id, meta: sessionMetaOf(labels, pod.metadata?.annotations ?? {}), state, endpoint };
}

/**
 * A workspace claim whose Pod is gone: a stopped session (the claim carries the stop), or a Pod
 * removed behind our back (our creates make the Pod first).
 */
export function sessionOfOrphanClaim(claim: V1PersistentVolumeClaim): BackendSession | undefined {
  const labels = claim.metadata?.labels ?? {};
  const id = labels[LABELS.sessionId];
  if (id === undefined || claim.metadata?.deletionTimestamp) return undefined;
  const annotations = claim.metadata?.annotations ?? {};
  const at = Number(annotations[ANNOTATIONS.stoppedAt]);
  return {
    id,
    meta: sessionMetaOf(labels, annotations),
    state: Number.isFinite(at) && at > 0 ? { phase: "stopped", at } : { phase: "failed", reason: removedReason(null) },
    endpoint: undefined,
  };
}
