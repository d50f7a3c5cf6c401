import { AMENDABLE_ANNOTATIONS, ANNOTATIONS, LABELS } from "@sbx/protocol";
import type { SessionMeta } from "../backend.js";

/** sbx's selector label keys: short values a label selector or filter can match. */
const SELECTOR_KEYS: ReadonlySet<string> = new Set(Object.values(LABELS));
/** Annotation keys that are a session's truth; anything else on an object (the image's, compose's) is not. */
const ANNOTATION_PREFIXES = ["sbx.dev/", ANNOTATIONS.userPrefix];
/** Keys a backend sets on its objects for its own bookkeeping, never a session's truth. */
const BOOKKEEPING_KEYS: ReadonlySet<string> = new Set([
  "sbx.dev/deleting",
  "sbx.dev/amended-seq",
  "sbx.dev/lock-expires",
]);

/**
 * A session's two layers out of an object's labels and annotations: sbx's selector keys from the
 * labels, sbx's annotation keys from the annotations. Docker keeps both on one label map: pass it
 * twice.
 */
export function sessionMetaOf(
  labels: Readonly<Record<string, string>>,
  annotations: Readonly<Record<string, string>>,
): SessionMeta {
  const meta: SessionMeta = { labels: {}, annotations: {} };
  for (const [key, value] of Object.entries(labels)) if (SELECTOR_KEYS.has(key)) meta.labels[key] = value;
  for (const [key, value] of Object.entries(annotations)) {
    if (SELECTOR_KEYS.has(key) || BOOKKEEPING_KEYS.has(key)) continue;
    if (ANNOTATION_PREFIXES.some((prefix) => key.startsWith(prefix))) meta.annotations[key] = value;
  }
  return meta;
}

/** Both layers as one label map (Docker keeps annotations as labels too). */
export function flattenMeta(meta: SessionMeta): Record<string, string> {
  return { ...meta.annotations, ...meta.labels };
}

/** The labels that mark an object as this deployment's. */
export function ownershipLabels(deployment: string): Record<string, string> {
  return { [LABELS.managed]: "true", [LABELS.deployment]: deployment };
}

/** Whether an object's labels say it is this deployment's; other deployments' objects are never touched. */
export function isOwnedBy(labels: Readonly<Record<string, string>> | undefined, deployment: string): boolean {
  return labels?.[LABELS.managed] === "true" && labels[LABELS.deployment] === deployment;
}

/** The ownership labels as `key=value` terms, for a label selector or a Docker label filter. */
export function ownershipTerms(deployment: string): string[] {
  return Object.entries(ownershipLabels(deployment)).map(([key, value]) => `${key}=${value}`);
}

/** Only the annotations a backend may change after a create (a PATCH); any other key is dropped. */
export function amendable(annotations: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(annotations).filter(([key]) => AMENDABLE_ANNOTATIONS.includes(key)));
}
