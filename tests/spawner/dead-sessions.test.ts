import { SandboxClient, SessionFailedError } from "@sbx/client";
import { ErrorEnvelopeSchema, type Session, SessionListResponseSchema, SessionResponseSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildMisbehavingImage,
  docker,
  dockerUnavailable,
  leftovers,
  OOM_TRIGGER_FILE,
  removeDeployment,
} from "../support/docker.js";
import { eventually } from "../support/proc.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";
import { type SpawnerHandle, startSpawner } from "../support/spawner.js";
import { type ReadResult, readEvents } from "../support/sse.js";

const skip = skipUnlessPlatform("Docker", await dockerUnavailable(), "dead-session tests");

/** How long a failed session stays readable before the sweeper removes it, in these tests. */
const RETENTION_MS = 8000;

describe("a session whose container dies", skippedBecause(skip), () => {
  let spawner: SpawnerHandle;
  let oomImage: string;

  beforeAll(async () => {
    oomImage = await buildMisbehavingImage("oom");
    spawner = await startSpawner({
      env: {
        SPAWNER_FAILED_RETENTION_MS: String(RETENTION_MS),
        SPAWNER_SWEEP_INTERVAL_MS: "500",
        SPAWNER_PROFILES: JSON.stringify({ hungry: { images: [oomImage] } }),
      },
    });
  });
  afterAll(async () => {
    await spawner?.stop();
    if (spawner) await removeDeployment(spawner.deployment);
    if (oomImage) await docker("rmi", "-f", oomImage).catch(() => "");
  });

  const container = (id: string) => `sbx-${spawner.deployment}-${id}`;

  async function session(id: string): Promise<Session | undefined> {
    const result = await spawner.json("GET", `/v1/sessions/${id}`);
    return result.status === 200 ? SessionResponseSchema.parse(result.body).session : undefined;
  }

  /** Starts a long exec and follows its event stream until it ends; resolves with when it ended. */
  async function attach(id: string): Promise<{ ended: Promise<ReadResult & { endedAt: number }> }> {
    const response = await spawner.request("POST", `/v1/sessions/${id}/execs`, {
      body: JSON.stringify({ argv: ["sleep", "600"] }),
    });
    expect(response.status).toBe(200);
    let started!: () => void;
    const sawStart = new Promise<void>((resolve) => {
      started = resolve;
    });
    const reading = readEvents(response, (event) => {
      if (event.type === "started") started();
      return false;
    }).then((result) => ({ ...result, endedAt: Date.now() }));
    await sawStart;
    // Wrapped: an async function returning a promise would wait for it.
    return { ended: reading };
  }

  /** What a user sees in the seconds after the death: GET, a new call, the attached stream. */
  async function expectReportedDead(
    id: string,
    diedAt: number,
    stream: Promise<ReadResult & { endedAt: number }>,
    code: string,
    /** Whether the kernel may have ended the exec first (its processes are the first the OOM killer takes). */
    execMayBeOomVictim = false,
  ) {
    expect(await eventually(async () => (await session(id))?.state === "failed", 5000)).toBe(true);
    expect(Date.now() - diedAt).toBeLessThan(5000);
    expect((await session(id))?.reason).toMatchObject({ code });

    const before = Date.now();
    const exec = await spawner.json("POST", `/v1/sessions/${id}/execs?wait=true`, { argv: ["true"] });
    expect(Date.now() - before).toBeLessThan(1000);
    expect(exec.status).toBe(410);
    expect(ErrorEnvelopeSchema.parse(exec.body).error).toMatchObject({
      code: "SESSION_FAILED",
      details: { reason: { code } },
    });

    const ended = await stream;
    expect(ended.endedAt - diedAt).toBeLessThan(5000);
    const exit = ended.events.find((e) => e.type === "exit");
    if (execMayBeOomVictim && exit?.type === "exit") {
      // Killed by the kernel for memory before the session's own process: reported as such.
      expect(exit.data).toMatchObject({ signal: "SIGKILL", exitCode: null });
    } else {
      expect(exit).toBeUndefined();
    }
  }

  it("docker kill: reported failed within 5 s, calls refused in under 1 s, the attached stream ends", async () => {
    expect((await spawner.json("POST", "/v1/sessions", { id: "killed", org: "dead" })).status).toBe(201);
    const { ended: stream } = await attach("killed");
    const diedAt = Date.now();
    await docker("kill", container("killed"));
    await expectReportedDead("killed", diedAt, stream, "exited");
    expect((await session("killed"))?.reason?.message).toMatch(/exited with code 137 \(SIGKILL\)/);
  });

  it("docker kill: every read in the moments after answers within 1 s, and once one says failed none says otherwise", async () => {
    expect((await spawner.json("POST", "/v1/sessions", { id: "instant", org: "dead" })).status).toBe(201);
    const { ended: stream } = await attach("instant");
    const base = "/v1/sessions/instant";
    const routes = [base, "/v1/sessions?org=dead", `${base}/execs`, `${base}/env`, `${base}/files/list?path=.`];
    /** What one read said: the session's state, or the error code; with when it was asked and answered. */
    const read = async (path: string) => {
      const askedAt = Date.now();
      const result = await spawner.json("GET", path);
      const said =
        result.status !== 200
          ? ErrorEnvelopeSchema.parse(result.body).error.code
          : path === base
            ? SessionResponseSchema.parse(result.body).session.state
            : path.startsWith("/v1/sessions?")
              ? (SessionListResponseSchema.parse(result.body).sessions.find((x) => x.id === "instant")?.state ??
                "missing")
              : "ready";
      return { path, askedAt, answeredAt: Date.now(), said };
    };
    const killing = docker("kill", container("instant"));
    const reads: Array<ReturnType<typeof read>> = [];
    const until = Date.now() + 2500;
    while (Date.now() < until) {
      for (const path of routes) reads.push(read(path));
      await new Promise((r) => setTimeout(r, 25));
    }
    await killing;
    const answers = await Promise.all(reads);
    for (const a of answers) expect(a.answeredAt - a.askedAt, `${a.path} said ${a.said}`).toBeLessThan(1000);
    const dead = (said: string) => said === "failed" || said === "SESSION_FAILED";
    const firstDeath = Math.min(...answers.filter((a) => dead(a.said)).map((a) => a.answeredAt));
    expect(Number.isFinite(firstDeath)).toBe(true);
    const contradicting = answers.filter((a) => a.askedAt > firstDeath && !dead(a.said));
    expect(contradicting.map((a) => `${a.path}: ${a.said}`)).toEqual([]);
    await stream;
  });

  it("out of memory: reported oom-killed within 5 s, calls refused in under 1 s, the attached stream ends", async () => {
    const created = await spawner.json("POST", "/v1/sessions", {
      id: "hungry",
      org: "dead",
      profile: "hungry",
      resources: { memoryMb: 128 },
    });
    expect(created.status).toBe(201);
    const { ended: stream } = await attach("hungry");
    const trigger = await spawner.request("PUT", `/v1/sessions/hungry/files/content?path=${OOM_TRIGGER_FILE}`, {
      body: "now",
    });
    expect(trigger.status).toBe(200);
    await expectReportedDead("hungry", Date.now(), stream, "oom-killed", true);
  });

  it("the SDK raises SessionFailedError from a followed exec instead of re-attaching forever", async () => {
    const client = new SandboxClient({ baseUrl: spawner.url, keyId: spawner.keyId, secret: spawner.secret });
    await client.createSession({ id: "followed", org: "dead" });
    const handle = await client.session("followed").exec({ argv: ["sleep", "600"] });
    const iterate = (async () => {
      for await (const _event of handle) {
        // following until the end
      }
    })();
    const diedAt = Date.now();
    await docker("kill", container("followed"));
    const error = await iterate.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SessionFailedError);
    expect(error instanceof SessionFailedError ? error.reason?.code : undefined).toBe("exited");
    expect(Date.now() - diedAt).toBeLessThan(10_000);
  });

  it("the sweeper removes failed sessions once their reason has been readable for the retention", async () => {
    expect(await eventually(async () => (await session("killed")) === undefined, RETENTION_MS + 10_000)).toBe(true);
    expect(await eventually(async () => (await session("hungry")) === undefined, RETENTION_MS + 10_000)).toBe(true);
    expect(await eventually(async () => (await session("followed")) === undefined, RETENTION_MS + 10_000)).toBe(true);
    expect(await leftovers(spawner.deployment)).toMatchObject({ containers: [], volumes: [] });
    expect(spawner.logs()).toMatch(/"sessionId":"killed","reason":"failed","msg":"session reaped"/);
  });
});
