import { CoreV1Api, KubeConfig, type V1Pod } from "@kubernetes/client-node";
import { ExecResultSchema, SessionResponseSchema, signRequest } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import {
  adminKubeconfig,
  kubectl,
  kubeLeftovers,
  kubernetesUnavailable,
  loadImages,
  SESSIONS_NAMESPACE,
  SPAWNER_NAMESPACE,
} from "../support/kubernetes.js";
import { eventually } from "../support/proc.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";

/** The parts of `kubectl get pods -o json` these tests read. */
const PodListSchema = z.object({
  items: z.array(
    z.object({
      metadata: z.object({ deletionTimestamp: z.string().optional() }),
      spec: z.object({
        securityContext: z.record(z.string(), z.unknown()),
        containers: z.array(z.object({ securityContext: z.record(z.string(), z.unknown()).optional() })),
      }),
      status: z.object({
        podIP: z.string().optional(),
        conditions: z.array(z.object({ type: z.string(), status: z.string() })).optional(),
      }),
    }),
  ),
});

const skip = skipUnlessPlatform(
  "a Kubernetes cluster",
  await kubernetesUnavailable(),
  "the deploy/kubernetes manifests test",
);

/** The development secret overlays/local (and the README) publish. */
const DEV_SECRET = "sbx-dev-secret-0123456789abcdef";
/** The deployment name the base manifests give the spawner (SPAWNER_DEPLOYMENT). */
const DEPLOYMENT = "default";

describe("deploy/kubernetes/overlays/local on a real cluster", skippedBecause(skip), () => {
  let url: string;

  beforeAll(async () => {
    await loadImages("sbx-spawner:latest", "sbx-runtime:latest");
    await kubectl("apply", "-k", "deploy/kubernetes/overlays/local");
    // A new image under the same tag: restart so the Pods run what was just built.
    await kubectl("rollout", "restart", "deployment/sbx-spawner", "-n", SPAWNER_NAMESPACE);
    await kubectl("rollout", "status", "deployment/sbx-spawner", "-n", SPAWNER_NAMESPACE, "--timeout=180s");
    // Ready replicas of this rollout only: the old ones may still be terminating.
    const pods = PodListSchema.parse(
      JSON.parse(
        await kubectl("get", "pods", "-n", SPAWNER_NAMESPACE, "-l", "app.kubernetes.io/name=sbx-spawner", "-o", "json"),
      ),
    );
    const ips = pods.items
      .filter(
        (p) =>
          !p.metadata.deletionTimestamp && p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
      )
      .map((p) => p.status.podIP ?? "");
    expect(ips.length).toBeGreaterThanOrEqual(2);
    url = `http://${ips[0]}:8080`;
  }, 300_000);

  afterAll(async () => {
    await kubectl("delete", "-k", "deploy/kubernetes/overlays/local", "--wait=true", "--timeout=120s").catch(() => "");
  }, 180_000);

  async function signed(method: string, path: string, body?: unknown) {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const response = await fetch(`${url}${path}`, {
      method,
      headers: signRequest({ keyId: "default", secret: DEV_SECRET, method, pathWithQuery: path, body: text }),
      ...(text === undefined ? {} : { body: text }),
    });
    const raw = await response.text();
    return { status: response.status, body: raw === "" ? undefined : JSON.parse(raw) };
  }

  it("runs two ready spawner replicas that answer health and readiness", async () => {
    const ready = await kubectl(
      "get",
      "deployment/sbx-spawner",
      "-n",
      SPAWNER_NAMESPACE,
      "-o",
      "jsonpath={.status.readyReplicas}",
    );
    expect(Number(ready)).toBe(2);
    expect(await (await fetch(`${url}/readyz`)).json()).toEqual({ status: "ready", backend: "kubernetes" });
  });

  it("creates a session, runs a command in it and deletes it, signed, through a spawner Pod", async () => {
    const created = await signed("POST", "/v1/sessions", { id: "manifest", org: "deploy" });
    expect(created.status).toBe(201);
    expect(SessionResponseSchema.parse(created.body).session).toMatchObject({ state: "ready", backend: "kubernetes" });
    const exec = await signed("POST", "/v1/sessions/manifest/execs?wait=true", { shell: "echo hi from $(hostname)" });
    expect(ExecResultSchema.parse(exec.body)).toMatchObject({ stdout: "hi from manifest\n", outcome: "completed" });
    expect((await signed("DELETE", "/v1/sessions/manifest")).status).toBe(204);
    expect(await eventually(async () => (await kubeLeftovers(DEPLOYMENT)).pods.length === 0, 60_000)).toBe(true);
  });

  it("gives the spawner a locked-down Pod", async () => {
    const spawner = PodListSchema.parse(
      JSON.parse(
        await kubectl("get", "pods", "-n", SPAWNER_NAMESPACE, "-l", "app.kubernetes.io/name=sbx-spawner", "-o", "json"),
      ),
    );
    const pod = spawner.items[0];
    if (!pod) throw new Error("no spawner Pod");
    expect(pod.spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    expect(pod.spec.containers[0]?.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    });
    // The secret reaches the spawner from a Secret, never as a literal in the Pod spec.
    expect(JSON.stringify(pod.spec)).not.toContain(DEV_SECRET);
    const policies = await kubectl("get", "networkpolicies", "-n", SESSIONS_NAMESPACE, "-o", "name");
    expect(policies).toContain("sessions-from-spawner");
  });

  it("gives its sessions no service-account token: none in the session's Pod, none inside it", async () => {
    const id = "tokenless";
    expect((await signed("POST", "/v1/sessions", { id, org: "deploy" })).status).toBe(201);
    try {
      const admin = new KubeConfig();
      admin.loadFromFile(adminKubeconfig() ?? "");
      const pods = await admin.makeApiClient(CoreV1Api).listNamespacedPod({
        namespace: SESSIONS_NAMESPACE,
        labelSelector: `sbx.dev/deployment=${DEPLOYMENT},sbx.dev/session-id=${id}`,
      });
      expect(pods.items.map((p) => p.metadata?.name)).toEqual([expect.stringContaining(id)]);
      const [pod] = pods.items;
      if (!pod) throw new Error(`no Pod for session ${id}`);
      expectNoServiceAccountToken(pod);
      // And from inside: the path a token would be mounted at does not exist.
      const inside = await signed("POST", `/v1/sessions/${id}/execs?wait=true`, {
        argv: ["sh", "-c", `test ! -e ${TOKEN_PATH} && test ! -e ${SECRETS_ROOT}`],
      });
      expect(ExecResultSchema.parse(inside.body)).toMatchObject({ outcome: "completed", exitCode: 0 });
    } finally {
      // Cleanup only: an assertion here would hide the failure that brought us here.
      await signed("DELETE", `/v1/sessions/${id}`);
      await eventually(async () => (await kubeLeftovers(DEPLOYMENT)).pods.length === 0, 60_000);
    }
  });
});

/** Where Kubernetes mounts a Pod's service-account token, and the root of what it mounts there. */
const SECRETS_ROOT = "/var/run/secrets/kubernetes.io";
const TOKEN_PATH = `${SECRETS_ROOT}/serviceaccount/token`;

/**
 * A Pod with no service-account token: automounting off, no volume that projects a token, and no
 * container (init containers included) mounting anything under SECRETS_ROOT.
 */
function expectNoServiceAccountToken(pod: V1Pod): void {
  const spec = pod.spec;
  if (!spec) throw new Error("the Pod has no spec");
  expect(spec.automountServiceAccountToken, "automountServiceAccountToken").toBe(false);
  const tokenVolumes = (spec.volumes ?? [])
    .filter((v) => v.projected?.sources?.some((source) => source.serviceAccountToken !== undefined))
    .map((v) => v.name);
  expect(tokenVolumes, "volumes that project a service-account token").toEqual([]);
  const containers = [...(spec.initContainers ?? []), ...spec.containers];
  expect(containers.length).toBeGreaterThan(0);
  const secretMounts = containers.flatMap((c) =>
    (c.volumeMounts ?? []).filter((m) => m.mountPath.startsWith(SECRETS_ROOT)).map((m) => `${c.name}: ${m.mountPath}`),
  );
  expect(secretMounts, `mounts under ${SECRETS_ROOT}`).toEqual([]);
}
