import type { V1PersistentVolumeClaim, V1Pod } from "@kubernetes/client-node";
import type { BackendSessionSpec } from "../backend.js";
import {
  DISK_SCRATCH_MB,
  HOME_PATH,
  RUNNERD_PORT,
  SESSION_GID,
  SESSION_UID,
  WORKSPACE_PATH,
} from "../runtime-contract.js";
import { RUNNERD_CONTAINER } from "./pod-state.js";

/** How the deployment's session Pods are made. */
export interface PodSettings {
  namespace: string;
  imagePullPolicy: "IfNotPresent" | "Always" | "Never";
  /** A RuntimeClass (gVisor, Kata) for session Pods, when the cluster offers one. */
  runtimeClassName: string | undefined;
  /** How long a deleted session's processes get to end after SIGTERM. */
  terminationGracePeriodSeconds: number;
  /**
   * The CPU request as a fraction of the session's CPU limit: agents idle most of the time, and
   * CPU (unlike memory) can be shared, so nodes may be packed tighter. 1 gives Guaranteed QoS.
   */
  cpuRequestFraction: number;
}

/**
 * A session's Pod: locked down (non-root, every capability dropped, no privilege escalation,
 * read-only root, RuntimeDefault seccomp, no service-account token, no service links), runnerd's
 * environment only, limits from the request, its workspace an emptyDir or its claim.
 */
export function podOf(
  spec: BackendSessionSpec,
  names: { pod: string; claim: string },
  ownership: Record<string, string>,
  settings: PodSettings,
): V1Pod {
  const cpuLimitMilli = Math.round(spec.resources.cpus * 1000);
  const cpuRequestMilli = Math.max(10, Math.round(cpuLimitMilli * settings.cpuRequestFraction));
  const memory = `${spec.resources.memoryMb}Mi`;
  const scratch = (sizeMb: number) => ({ sizeLimit: `${sizeMb}Mi` });
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: names.pod,
      namespace: settings.namespace,
      labels: { ...spec.meta.labels, ...ownership },
      annotations: spec.meta.annotations,
    },
    spec: {
      restartPolicy: "Never",
      hostname: spec.id,
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      terminationGracePeriodSeconds: settings.terminationGracePeriodSeconds,
      ...(settings.runtimeClassName ? { runtimeClassName: settings.runtimeClassName } : {}),
      securityContext: {
        runAsNonRoot: true,
        runAsUser: SESSION_UID,
        runAsGroup: SESSION_GID,
        fsGroup: SESSION_GID,
        seccompProfile: { type: "RuntimeDefault" },
      },
      containers: [
        {
          name: RUNNERD_CONTAINER,
          image: spec.image,
          imagePullPolicy: settings.imagePullPolicy,
          env: Object.entries(spec.runnerdEnv).map(([name, value]) => ({ name, value })),
          ports: [{ name: "runnerd", containerPort: RUNNERD_PORT, protocol: "TCP" }],
          workingDir: WORKSPACE_PATH,
          resources: {
            requests: { cpu: `${cpuRequestMilli}m`, memory },
            limits: { cpu: `${cpuLimitMilli}m`, memory },
          },
          securityContext: {
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            runAsNonRoot: true,
            capabilities: { drop: ["ALL"] },
          },
          volumeMounts: [
            { name: "workspace", mountPath: WORKSPACE_PATH },
            { name: "tmp", mountPath: "/tmp" },
            { name: "home", mountPath: HOME_PATH },
          ],
        },
      ],
      volumes: [
        spec.workspace.persistent
          ? { name: "workspace", persistentVolumeClaim: { claimName: names.claim } }
          : { name: "workspace", emptyDir: scratch(spec.workspace.sizeMb) },
        { name: "tmp", emptyDir: scratch(DISK_SCRATCH_MB.tmp) },
        { name: "home", emptyDir: scratch(DISK_SCRATCH_MB.home) },
      ],
    },
  };
}

/** A persistent workspace's PersistentVolumeClaim, carrying the session's truth as the Pod does. */
export function workspaceClaimOf(
  spec: BackendSessionSpec,
  name: string,
  ownership: Record<string, string>,
  namespace: string,
): V1PersistentVolumeClaim {
  return {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: {
      name,
      namespace,
      labels: { ...spec.meta.labels, ...ownership },
      annotations: spec.meta.annotations,
    },
    spec: {
      accessModes: ["ReadWriteOnce"],
      resources: { requests: { storage: `${spec.workspace.sizeMb}Mi` } },
      ...(spec.workspace.storageClass ? { storageClassName: spec.workspace.storageClass } : {}),
    },
  };
}
