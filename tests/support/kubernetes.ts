import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { createLogger } from "@sbx/edge";
import { KubernetesBackend } from "@sbx/spawner";
import { z } from "zod";
import { RUNTIME_IMAGE } from "./docker.js";
import { type SpawnerHandle, type StartSpawnerOptions, startSpawner } from "./spawner.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const LOCAL_CLUSTER_HOME = process.env.SBX_CLUSTER_HOME ?? "/var/lib/sbx-cluster";
const LOCAL_CLUSTER_SCRIPT = path.join(ROOT, "deploy/local-cluster/cluster.sh");

/** The namespace session Pods run in (deploy/kubernetes makes it, and binds the spawner's Role there). */
export const SESSIONS_NAMESPACE = "sbx-sessions";
export const SPAWNER_NAMESPACE = "sbx-system";
export const SPAWNER_ACCOUNT = "sbx-spawner";
/** The StorageClass deploy/local-cluster provides; other clusters name theirs with SBX_TEST_STORAGE_CLASS. */
export const STORAGE_CLASS = process.env.SBX_TEST_STORAGE_CLASS ?? "sbx-local";

/**
 * The admin kubeconfig the Kubernetes suites use: $KUBECONFIG (kind,
 * minikube, any cluster), else the one deploy/local-cluster writes.
 */
export function adminKubeconfig(): string | undefined {
  if (process.env.KUBECONFIG) return process.env.KUBECONFIG;
  const local = path.join(LOCAL_CLUSTER_HOME, "admin.kubeconfig");
  return existsSync(local) ? local : undefined;
}

/** kubectl: the local cluster's build when there is one, else the one on PATH. */
function kubectlBinary(): string {
  const local = path.join(LOCAL_CLUSTER_HOME, "bin/kubectl");
  return existsSync(local) ? local : "kubectl";
}

export async function kubectl(...args: string[]): Promise<string> {
  const kubeconfig = adminKubeconfig();
  const { stdout } = await run(kubectlBinary(), [...(kubeconfig ? ["--kubeconfig", kubeconfig] : []), ...args], {
    cwd: ROOT,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

/** Why the Kubernetes suites cannot run here, or undefined when they can. */
export async function kubernetesUnavailable(): Promise<string | undefined> {
  const kubeconfig = adminKubeconfig();
  if (!kubeconfig) {
    return "no cluster: set KUBECONFIG, or start deploy/local-cluster/cluster.sh up (.ci/run does)";
  }
  try {
    const config = new KubeConfig();
    config.loadFromFile(kubeconfig);
    await config.makeApiClient(CoreV1Api).listNamespace({ limit: 1 });
  } catch (error) {
    return `the cluster of ${kubeconfig} does not answer: ${error instanceof Error ? error.message : String(error)}`;
  }
  return undefined;
}

/** Applies the namespaces and the spawner's RBAC from deploy/kubernetes/base, as an operator would. */
export async function applyRbac(): Promise<void> {
  await kubectl(
    "apply",
    "-f",
    "deploy/kubernetes/base/namespaces.yaml",
    "-f",
    "deploy/kubernetes/base/rbac.yaml",
    "-f",
    "deploy/kubernetes/base/network-policies.yaml",
  );
}

/**
 * A kubeconfig that acts as the spawner's ServiceAccount (a TokenRequest
 * token), so the suites prove the Role from deploy/ is all it needs.
 */
export async function spawnerKubeconfig(): Promise<string> {
  const admin = new KubeConfig();
  const file = adminKubeconfig();
  if (!file) throw new Error("no admin kubeconfig");
  admin.loadFromFile(file);
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error(`${file} has no current cluster`);
  const token = (await kubectl("create", "token", SPAWNER_ACCOUNT, "-n", SPAWNER_NAMESPACE, "--duration", "2h")).trim();
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ ...cluster, name: "cluster" }],
    users: [{ name: SPAWNER_ACCOUNT, token }],
    contexts: [{ name: "spawner", cluster: "cluster", user: SPAWNER_ACCOUNT, namespace: SESSIONS_NAMESPACE }],
    currentContext: "spawner",
  });
  const out = path.join(await mkdtemp(path.join(tmpdir(), "sbx-spawner-kubeconfig-")), "kubeconfig");
  await writeFile(out, config.exportConfig(), { mode: 0o600 });
  return out;
}

/** Copies locally built images into the cluster: deploy/local-cluster, kind or minikube, whichever runs it. */
export async function loadImages(...images: string[]): Promise<void> {
  const kubeconfig = adminKubeconfig();
  if (kubeconfig === path.join(LOCAL_CLUSTER_HOME, "admin.kubeconfig")) {
    await run(LOCAL_CLUSTER_SCRIPT, ["load", ...images], { maxBuffer: 64 * 1024 * 1024 });
    return;
  }
  const context = (await kubectl("config", "current-context")).trim();
  if (context.startsWith("kind-")) {
    await run("kind", ["load", "docker-image", "--name", context.slice("kind-".length), ...images]);
  } else if (context === "minikube") {
    for (const image of images) await run("minikube", ["image", "load", image]);
  } else {
    throw new Error(`cannot load images into the cluster of context ${context}: load ${images.join(", ")} yourself`);
  }
}

/** The spawner's own Kubernetes backend for a deployment, acting as the admin (for leftovers and teardown). */
export function kubeBackendOf(deployment: string, kubeconfig = adminKubeconfig()): KubernetesBackend {
  return new KubernetesBackend(
    {
      kubeconfig,
      namespace: SESSIONS_NAMESPACE,
      deployment,
      imagePullPolicy: "IfNotPresent",
      runtimeClassName: undefined,
      terminationGracePeriodSeconds: 5,
      cpuRequestFraction: 0.25,
      unschedulableGraceMs: 0,
    },
    createLogger("tests", "warn"),
  );
}

/** Every Pod and PVC a deployment of the spawner left in the sessions' namespace, as its backend sees them. */
export async function kubeLeftovers(deployment: string): Promise<{ pods: string[]; pvcs: string[]; leases: string[] }> {
  const owned = await kubeBackendOf(deployment).owned();
  const named = (kind: string) => owned.filter((o) => o.kind === kind).map((o) => o.name);
  return { pods: named("pod"), pvcs: named("pvc"), leases: named("lease") };
}

/** The sbx labels and annotations of a session's Pod and PVC, by kind and name: what the spawner wrote. */
export async function kubeSbxTruth(deployment: string, id: string): Promise<Record<string, Record<string, string>>> {
  const selector = `sbx.dev/managed=true,sbx.dev/deployment=${deployment},sbx.dev/session-id=${id}`;
  const listed = KubeListSchema.parse(
    JSON.parse(await kubectl("get", "pods,pvc", "-n", SESSIONS_NAMESPACE, "-l", selector, "-o", "json")),
  );
  const truth: Record<string, Record<string, string>> = {};
  for (const item of listed.items) {
    const { labels, annotations } = item.metadata;
    truth[`${item.kind}/${item.metadata.name}`] = Object.fromEntries(
      Object.entries({ ...labels, ...annotations }).filter(([key]) => key.startsWith("sbx.")),
    );
  }
  return truth;
}

const KubeListSchema = z.object({
  items: z.array(
    z.object({
      kind: z.string(),
      metadata: z.object({
        name: z.string(),
        labels: z.record(z.string(), z.string()).optional(),
        annotations: z.record(z.string(), z.string()).optional(),
      }),
    }),
  ),
});

/** Removes everything of a deployment at once; for test teardown, even after a failure. */
export async function removeKubeDeployment(deployment: string): Promise<void> {
  const selector = `sbx.dev/managed=true,sbx.dev/deployment=${deployment}`;
  await kubectl(
    "delete",
    "pods,pvc,leases",
    "-n",
    SESSIONS_NAMESPACE,
    "-l",
    selector,
    "--grace-period=0",
    "--force",
  ).catch(() => "");
}

/** A spawner on the host with the Kubernetes backend, acting as the ServiceAccount deploy/kubernetes binds. */
export async function startKubeSpawner(options: StartSpawnerOptions = {}): Promise<SpawnerHandle> {
  await applyRbac();
  await loadImages(RUNTIME_IMAGE);
  return startSpawner({
    ...options,
    env: {
      SPAWNER_BACKEND: "kubernetes",
      SPAWNER_KUBECONFIG: await spawnerKubeconfig(),
      SPAWNER_KUBE_NAMESPACE: SESSIONS_NAMESPACE,
      SPAWNER_CREATE_TIMEOUT_MS: "60000",
      SPAWNER_TERMINATION_GRACE_SECONDS: "5",
      ...options.env,
    },
  });
}
