import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { ErrorEnvelopeSchema, type Session, SessionResponseSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildMisbehavingImage, docker, MISSING_IMAGE, OOM_TRIGGER_FILE } from "../support/docker.js";
import {
  adminKubeconfig,
  kubeLeftovers,
  kubernetesUnavailable,
  loadImages,
  removeKubeDeployment,
  SESSIONS_NAMESPACE,
  STORAGE_CLASS,
  startKubeSpawner,
} from "../support/kubernetes.js";
import { eventually } from "../support/proc.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";
import type { SpawnerHandle } from "../support/spawner.js";
import { readEvents, textOf } from "../support/sse.js";

const skip = skipUnlessPlatform("a Kubernetes cluster", await kubernetesUnavailable(), "Kubernetes failure tests");

describe("failures on Kubernetes, through the spawner", skippedBecause(skip), () => {
  let spawner: SpawnerHandle;
  let oomImage: string;
  let core: CoreV1Api;

  beforeAll(async () => {
    oomImage = await buildMisbehavingImage("oom");
    await loadImages(oomImage);
    spawner = await startKubeSpawner({
      env: {
        SPAWNER_PROFILES: JSON.stringify({
          odd: { images: [MISSING_IMAGE, oomImage] },
          durable: {
            images: ["sbx-runtime:latest"],
            workspace: { persistent: true, sizeMb: 256, storageClass: STORAGE_CLASS },
          },
        }),
        SPAWNER_FAILED_RETENTION_MS: "600000",
      },
    });
    const admin = new KubeConfig();
    admin.loadFromFile(adminKubeconfig() ?? "");
    core = admin.makeApiClient(CoreV1Api);
  });
  afterAll(async () => {
    await spawner?.stop();
    if (spawner) await removeKubeDeployment(spawner.deployment);
    if (oomImage) await docker("rmi", "-f", oomImage).catch(() => "");
  });

  const podName = (id: string) => `sbx-${spawner.deployment}-${id}`;

  async function session(id: string, via = spawner): Promise<Session | undefined> {
    const result = await via.json("GET", `/v1/sessions/${id}`);
    return result.status === 200 ? SessionResponseSchema.parse(result.body).session : undefined;
  }

  it("answers an image that does not exist with 502 IMAGE_UNAVAILABLE as soon as the kubelet says so", async () => {
    const started = Date.now();
    const result = await spawner.json("POST", "/v1/sessions", {
      id: "noimage",
      org: "k",
      profile: "odd",
      image: MISSING_IMAGE,
    });
    expect(result.status).toBe(502);
    expect(ErrorEnvelopeSchema.parse(result.body).error.code).toBe("IMAGE_UNAVAILABLE");
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await eventually(async () => (await kubeLeftovers(spawner.deployment)).pods.length === 0, 30_000)).toBe(
      true,
    );
  });

  it("reports a Pod deleted out of band as failed (removed) within seconds, and ends its streams", async () => {
    expect((await spawner.json("POST", "/v1/sessions", { id: "deleted", org: "k" })).status).toBe(201);
    const response = await spawner.request("POST", "/v1/sessions/deleted/execs", {
      body: JSON.stringify({ argv: ["sleep", "600"] }),
    });
    const stream = readEvents(response);
    const deletedAt = Date.now();
    await core.deleteNamespacedPod({ name: podName("deleted"), namespace: SESSIONS_NAMESPACE });
    expect(await eventually(async () => (await session("deleted"))?.state === "failed", 5000)).toBe(true);
    expect((await session("deleted"))?.reason).toMatchObject({ code: "removed" });
    const call = await spawner.json("POST", "/v1/sessions/deleted/execs?wait=true", { argv: ["true"] });
    expect([call.status, ErrorEnvelopeSchema.parse(call.body).error.code]).toEqual([410, "SESSION_FAILED"]);
    await stream;
    expect(Date.now() - deletedAt).toBeLessThan(10_000);
  });

  it("reports an OOM-killed session as oom-killed within seconds", async () => {
    const created = await spawner.json("POST", "/v1/sessions", {
      id: "hungry",
      org: "k",
      profile: "odd",
      image: oomImage,
      resources: { memoryMb: 128 },
    });
    expect(created.status).toBe(201);
    const trigger = await spawner.request("PUT", `/v1/sessions/hungry/files/content?path=${OOM_TRIGGER_FILE}`, {
      body: "now",
    });
    expect(trigger.status).toBe(200);
    expect(await eventually(async () => (await session("hungry"))?.state === "failed", 10_000)).toBe(true);
    expect((await session("hungry"))?.reason).toMatchObject({ code: "oom-killed" });
    const call = await spawner.json("GET", "/v1/sessions/hungry/execs");
    expect(call.status).toBe(410);
  });

  it("keeps a persistent workspace on a PersistentVolumeClaim, and deletes it with the session", async () => {
    const created = await spawner.json("POST", "/v1/sessions", { id: "durable", org: "k", profile: "durable" });
    expect(created.status).toBe(201);
    const pod = await core.readNamespacedPod({ name: podName("durable"), namespace: SESSIONS_NAMESPACE });
    const claim = pod.spec?.volumes?.find((v) => v.name === "workspace")?.persistentVolumeClaim?.claimName;
    expect(claim).toBe(`${podName("durable")}-workspace`);
    const pvc = await core.readNamespacedPersistentVolumeClaim({ name: claim ?? "", namespace: SESSIONS_NAMESPACE });
    expect(pvc.status?.phase).toBe("Bound");
    expect(pvc.metadata?.labels).toMatchObject({ "sbx.dev/session-id": "durable" });
    const write = await spawner.json("POST", "/v1/sessions/durable/execs?wait=true", {
      shell: "echo kept > note.txt && df -P /workspace | tail -1",
    });
    expect(write.status).toBe(200);
    expect((await spawner.request("DELETE", "/v1/sessions/durable")).status).toBe(204);
    expect(
      await eventually(async () => {
        const left = await kubeLeftovers(spawner.deployment);
        return !left.pods.includes(podName("durable")) && !left.pvcs.includes(claim ?? "");
      }, 60_000),
    ).toBe(true);
  });

  it("serves a re-attach through another replica after one is killed mid-stream, nothing lost, lifetimes intact", async () => {
    // A second replica of the same deployment, running alongside before the first dies.
    const other = await startKubeSpawner({
      deployment: spawner.deployment,
      secrets: { secret: spawner.secret, runnerdSecret: spawner.runnerdSecret },
    });
    expect((await spawner.json("POST", "/v1/sessions", { id: "relay", org: "k", ttlMs: 3_600_000 })).status).toBe(201);
    const patched = await spawner.json("PATCH", "/v1/sessions/relay", { ttlMs: 7_200_000, idleTimeoutMs: 120_000 });
    const lifetime = SessionResponseSchema.parse(patched.body).session;
    const first = await readEvents(
      await spawner.request("POST", "/v1/sessions/relay/execs", {
        body: JSON.stringify({ execId: "count", shell: "for i in $(seq 1 40); do echo $i; sleep 0.05; done" }),
      }),
      (event) => event.seq >= 5,
    );
    await spawner.kill();
    spawner = other;
    const lastId = first.events.at(-1)?.seq ?? 0;
    const rest = await readEvents(
      await other.request("GET", "/v1/sessions/relay/execs/count/events", {
        headers: { "last-event-id": String(lastId) },
      }),
    );
    const all = [...first.events, ...rest.events];
    expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
    expect(textOf(all).trim().split("\n")).toEqual(Array.from({ length: 40 }, (_, i) => String(i + 1)));
    expect(await session("relay", other)).toMatchObject({
      expiresAt: lifetime.expiresAt,
      idleTimeoutMs: 120_000,
      state: "ready",
    });
  });

  it("leaves no Pod or PVC behind once the sessions are deleted", async () => {
    for (const id of ["deleted", "hungry", "relay"]) await spawner.request("DELETE", `/v1/sessions/${id}`);
    expect(
      await eventually(async () => {
        const left = await kubeLeftovers(spawner.deployment);
        return left.pods.length === 0 && left.pvcs.length === 0;
      }, 60_000),
    ).toBe(true);
  });
});
