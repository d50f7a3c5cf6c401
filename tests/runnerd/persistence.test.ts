import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { EnvNamesResponseSchema, ExecInfoSchema, REQUEST_ID_HEADER, RunnerdStatusSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunnerdHandle, startRunnerd } from "../support/runnerd.js";
import { exitOf, readEvents, textOf } from "../support/sse.js";

describe("runnerd keeps its state across a stop and a start on the same workspace", () => {
  let root: string;
  let first: RunnerdHandle;
  let second: RunnerdHandle;
  let tickerLastSeq = 0;

  beforeAll(async () => {
    root = await mkdtemp(path.join(tmpdir(), "runnerd-persist-"));
    first = await startRunnerd({ root });
    expect((await first.json("PATCH", "/v1/env", { set: { API_KEY: "k-123", MODE: "fast" } })).status).toBe(200);
    const recorded = await first.request("/v1/requests", {
      method: "POST",
      headers: { [REQUEST_ID_HEADER]: "c".repeat(64) },
    });
    expect(recorded.status).toBe(204);
    const done = await first.json("POST", "/v1/execs?wait=true", {
      execId: "done",
      shell: "for i in $(seq 1 50); do echo line $i; done",
    });
    expect(done.status).toBe(200);
    // Still running when runnerd stops: it must end `interrupted`, its output kept.
    const ticker = await readEvents(
      await first.request("/v1/execs", {
        method: "POST",
        body: JSON.stringify({ execId: "ticker", shell: "for i in $(seq 1 1000); do echo tick $i; sleep 0.02; done" }),
      }),
      (event) => event.seq >= 10,
    );
    tickerLastSeq = ticker.events.at(-1)?.seq ?? 0;
    const stopped = await first.stop();
    expect(stopped.code).toBe(0);
    second = await startRunnerd({ root, token: first.token });
  });
  afterAll(async () => {
    await second?.stop();
    await rm(root, { recursive: true, force: true });
  });

  it("brings back the session env, and keeps no lease of its own", async () => {
    expect(EnvNamesResponseSchema.parse((await second.json("GET", "/v1/env")).body).names).toEqual(["API_KEY", "MODE"]);
    const env = await second.json("POST", "/v1/execs?wait=true", { shell: 'echo "$API_KEY/$MODE"' });
    expect(env.body).toMatchObject({ stdout: "k-123/fast\n" });
    // A session's lifetime is the spawner's: runnerd has no route that takes one, and reports none.
    expect((await second.json("PUT", "/v1/lease", { expiresAt: Date.now(), idleTimeoutMs: 1000 })).status).toBe(404);
    expect(RunnerdStatusSchema.strict().safeParse((await second.json("GET", "/v1/status")).body).success).toBe(true);
  });

  it("still refuses a signed request the earlier runnerd acted on", async () => {
    const again = await second.request("/v1/requests", {
      method: "POST",
      headers: { [REQUEST_ID_HEADER]: "c".repeat(64) },
    });
    expect(again.status).toBe(401);
  });

  it("brings back a finished exec with its whole output, replayable from any point", async () => {
    const info = ExecInfoSchema.parse((await second.json("GET", "/v1/execs/done")).body);
    expect(info).toMatchObject({ state: "exited", outcome: "completed", exitCode: 0 });
    const all = await readEvents(await second.request("/v1/execs/done/events"));
    expect(textOf(all.events).trim().split("\n")).toHaveLength(50);
    const middle = all.events[Math.floor(all.events.length / 2)]?.seq ?? 1;
    const rest = await readEvents(
      await second.request("/v1/execs/done/events", { headers: { "last-event-id": String(middle) } }),
    );
    expect(rest.events.map((e) => e.seq)).toEqual(all.events.filter((e) => e.seq > middle).map((e) => e.seq));
    expect(exitOf(rest.events).outcome).toBe("completed");
  });

  it("ends an exec that was running when runnerd stopped as interrupted, keeping what it printed", async () => {
    expect(ExecInfoSchema.parse((await second.json("GET", "/v1/execs/ticker")).body).outcome).toBe("interrupted");
    const rest = await readEvents(
      await second.request("/v1/execs/ticker/events", { headers: { "last-event-id": String(tickerLastSeq) } }),
    );
    // The rest of what it printed before the stop, then its exit: never silence.
    expect(rest.events[0]?.seq).toBe(tickerLastSeq + 1);
    expect(exitOf(rest.events).outcome).toBe("interrupted");
  });

  it("keeps its files in .sbx, private to the session user, out of the file API's reach", async () => {
    expect((await stat(path.join(root, ".sbx/runnerd"))).mode & 0o777).toBe(0o700);
    for (const name of await readdir(path.join(root, ".sbx/runnerd"))) {
      expect((await stat(path.join(root, ".sbx/runnerd", name))).mode & 0o777).toBe(0o600);
    }
    const listing = await second.json("GET", "/v1/files/list?path=.");
    expect(JSON.stringify(listing.body)).not.toContain(".sbx");
    for (const [method, route] of [
      ["GET", "/v1/files/content?path=.sbx/runnerd/env.json"],
      ["GET", "/v1/files/list?path=.sbx"],
      ["DELETE", "/v1/files?path=.sbx&recursive=true"],
    ] as const) {
      const result = await second.json(method, route);
      expect([route, result.status]).toEqual([route, 403]);
    }
  });
});
