import { randomBytes } from "node:crypto";
import {
  ErrorEnvelopeSchema,
  ExecInfoSchema,
  ExecResultSchema,
  FileListResponseSchema,
  FileWriteResponseSchema,
  SessionListResponseSchema,
  SessionResponseSchema,
  signRequest,
} from "@sbx/protocol";
import * as tar from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RUNTIME_IMAGE } from "./docker.js";
import { eventually } from "./proc.js";
import { skippedBecause } from "./skips.js";
import type { SpawnerHandle } from "./spawner.js";
import { exitOf, readEvents, textOf } from "./sse.js";

export interface LifecycleOptions {
  backend: "docker" | "kubernetes";
  /** Why the suite cannot run here (it is then skipped and says so). */
  skip: string | undefined;
  start(): Promise<SpawnerHandle>;
  /**
   * Checks the session's container or Pod is locked down, and returns its
   * whole spec and state as text, which must hold no secret.
   */
  inspectLockdown(spawner: SpawnerHandle, id: string): Promise<string>;
  /** Names of every object the deployment still owns. */
  leftovers(deployment: string): Promise<string[]>;
  cleanup(deployment: string): Promise<void>;
}

/**
 * The whole public API through a real spawner on a real backend: create,
 * lockdown, list, execs (SSE, ?wait=true, re-attach), cancel, stdin, env,
 * files and tar both ways, lifetimes, delete.
 */
export function runLifecycleSuite(options: LifecycleOptions): void {
  describe(`session lifecycle through the public API (${options.backend})`, skippedBecause(options.skip), () => {
    let spawner: SpawnerHandle;
    const id = "life";
    const base = `/v1/sessions/${id}`;

    beforeAll(async () => {
      spawner = await options.start();
    });
    afterAll(async () => {
      await spawner?.stop();
      if (spawner) await options.cleanup(spawner.deployment);
    });

    it("creates a session, and answers a repeat of the same create with the same session", async () => {
      const request = {
        id,
        org: "acme",
        owner: "dev@acme.test",
        labels: { team: "core", purpose: "e2e" },
        env: { GREETING: "hello", API_TOKEN: "tok-secret-value-1234" },
        resources: { cpus: 0.5, memoryMb: 256, pids: 200 },
        ttlMs: 3_600_000,
        idleTimeoutMs: 600_000,
      };
      const created = await spawner.json("POST", "/v1/sessions", request);
      expect(created.status).toBe(201);
      const { session } = SessionResponseSchema.parse(created.body);
      expect(session).toMatchObject({
        id,
        org: "acme",
        owner: "dev@acme.test",
        state: "ready",
        image: RUNTIME_IMAGE,
        labels: { team: "core", purpose: "e2e" },
        resources: { cpus: 0.5, memoryMb: 256, pids: 200 },
        idleTimeoutMs: 600_000,
        backend: options.backend,
      });
      expect(session.expiresAt - session.createdAt).toBe(3_600_000);
      const again = await spawner.json("POST", "/v1/sessions", request);
      expect(again.status).toBe(200);
      expect(SessionResponseSchema.parse(again.body).session.createdAt).toBe(session.createdAt);
      const conflicting = await spawner.json("POST", "/v1/sessions", { ...request, labels: { team: "other" } });
      expect(conflicting.status).toBe(409);
      expect(conflicting.body).toMatchObject({ error: { code: "SESSION_CONFLICT" } });
    });

    it("locks the session down and shows no token or env value in its backend object", async () => {
      const everything = await options.inspectLockdown(spawner, id);
      expect(everything).not.toContain("tok-secret-value-1234");
      expect(everything).not.toContain(spawner.secret);
      expect(everything).not.toContain(spawner.runnerdSecret);
      expect(everything).not.toMatch(/RUNNERD_TOKEN[^_]/);
      expect(everything).toContain("RUNNERD_TOKEN_SHA256");
      expect(spawner.logs()).not.toContain("tok-secret-value-1234");
    });

    it("gets the session and lists it by label, org and owner", async () => {
      const got = SessionResponseSchema.parse((await spawner.json("GET", base)).body).session;
      expect(got.id).toBe(id);
      for (const query of [
        "?label=team=core",
        "?label=team=core&label=purpose=e2e",
        "?org=acme",
        "?owner=dev@acme.test",
      ]) {
        const listed = SessionListResponseSchema.parse((await spawner.json("GET", `/v1/sessions${query}`)).body);
        expect(listed.sessions.map((s) => s.id)).toEqual([id]);
      }
      const none = SessionListResponseSchema.parse((await spawner.json("GET", "/v1/sessions?label=team=other")).body);
      expect(none.sessions).toEqual([]);
    });

    it("runs execs with the session env but without runnerd's configuration", async () => {
      const response = await spawner.json("POST", `${base}/execs?wait=true`, { argv: ["env"] });
      const result = ExecResultSchema.parse(response.body);
      expect(result.outcome).toBe("completed");
      expect(result.stdout).toContain("GREETING=hello\n");
      expect(result.stdout).not.toMatch(/^RUNNERD_/m);
      const whoami = ExecResultSchema.parse(
        (await spawner.json("POST", `${base}/execs?wait=true`, { shell: "id -u; touch /usr/x 2>&1 || true" })).body,
      );
      expect(whoami.stdout).toMatch(/^10001\n.*Read-only file system/s);
    });

    it("streams exec events as SSE, and re-attaches after a dropped connection with nothing lost or repeated", async () => {
      const execId = "ticker";
      const first = await readEvents(
        await spawner.request("POST", `${base}/execs`, {
          body: JSON.stringify({ execId, shell: "for i in $(seq 1 20); do echo line $i; sleep 0.03; done" }),
        }),
        (event) => event.seq >= 4,
      );
      expect(first.end).toBe("stopped");
      const lastId = first.events.at(-1)?.seq ?? 0;
      const second = await readEvents(
        await spawner.request("GET", `${base}/execs/${execId}/events`, {
          headers: { "last-event-id": String(lastId) },
        }),
      );
      const all = [...first.events, ...second.events];
      expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
      expect(textOf(all).trim().split("\n")).toEqual(Array.from({ length: 20 }, (_, i) => `line ${i + 1}`));
      expect(exitOf(all).outcome).toBe("completed");
      const info = ExecInfoSchema.parse((await spawner.json("GET", `${base}/execs/${execId}`)).body);
      expect(info).toMatchObject({ state: "exited", outcome: "completed" });
    });

    it("cancels an exec and writes to a held-open stdin", async () => {
      const sleeper = await readEvents(
        await spawner.request("POST", `${base}/execs`, {
          body: JSON.stringify({ execId: "sleeper", argv: ["sleep", "300"] }),
        }),
        (event) => event.type === "started",
      );
      expect(sleeper.events[0]?.type).toBe("started");
      const cancel = await spawner.json("POST", `${base}/execs/sleeper/cancel`, { signal: "SIGTERM", graceMs: 1000 });
      expect(cancel.status).toBe(202);
      const after = await readEvents(await spawner.request("GET", `${base}/execs/sleeper/events?after=1`));
      expect(exitOf(after.events).outcome).toBe("cancelled");

      const cat = readEvents(
        await spawner.request("POST", `${base}/execs`, {
          body: JSON.stringify({ execId: "cat", argv: ["cat"], stdin: { mode: "hold" } }),
        }),
      );
      expect((await spawner.json("POST", `${base}/execs/cat/stdin`, { text: "piece one, " })).status).toBe(200);
      expect((await spawner.json("POST", `${base}/execs/cat/stdin`, { text: "piece two", eof: true })).body).toEqual({
        written: 9,
        closed: true,
        received: 20,
      });
      expect(textOf((await cat).events)).toBe("piece one, piece two");
    });

    it("sets and unsets env, never echoing values", async () => {
      const patch = await spawner.json("PATCH", `${base}/env`, { set: { EXTRA: "x1" }, unset: ["GREETING"] });
      expect(patch.body).toEqual({ names: ["API_TOKEN", "EXTRA"], denied: [] });
      const names = await spawner.json("GET", `${base}/env`);
      expect(JSON.stringify(names.body)).not.toContain("tok-secret-value-1234");
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, not a template.
      const shell = 'echo "$EXTRA-${GREETING:-gone}"';
      const result = ExecResultSchema.parse((await spawner.json("POST", `${base}/execs?wait=true`, { shell })).body);
      expect(result.stdout).toBe("x1-gone\n");
    });

    it("serves every file route, streaming bytes both ways", async () => {
      const payload = randomBytes(1024 * 1024 + 3);
      const put = await spawner.request("PUT", `${base}/files/content?path=data/blob.bin&mode=0640`, {
        body: payload,
        unsigned: true,
      });
      expect(put.status).toBe(200);
      expect(FileWriteResponseSchema.parse(await put.json()).size).toBe(payload.length);
      const signedPut = await spawner.request("PUT", `${base}/files/content?path=data/signed.txt`, {
        body: "signed body",
      });
      expect(signedPut.status).toBe(200);
      const got = await spawner.request("GET", `${base}/files/content?path=data/blob.bin`);
      expect(Buffer.from(await got.arrayBuffer()).equals(payload)).toBe(true);
      expect((await spawner.json("GET", `${base}/files/stat?path=data/blob.bin`)).body).toMatchObject({
        type: "file",
        size: payload.length,
        mode: "0640",
      });
      expect((await spawner.json("POST", `${base}/files/mkdir`, { path: "tree/sub" })).status).toBe(201);
      expect(
        (await spawner.json("POST", `${base}/files/move`, { from: "data/signed.txt", to: "tree/sub/moved.txt" }))
          .status,
      ).toBe(200);
      const list = FileListResponseSchema.parse(
        (await spawner.json("GET", `${base}/files/list?path=tree&depth=2`)).body,
      );
      expect(list.entries.map((e) => e.path)).toEqual(["tree/sub", "tree/sub/moved.txt"]);

      // A directory out as tar, and back in elsewhere.
      const archive = Buffer.from(
        await (await spawner.request("GET", `${base}/files/archive?path=tree`)).arrayBuffer(),
      );
      const names: string[] = [];
      const extract = tar.extract();
      const done = new Promise<void>((resolve, reject) => {
        extract.on("entry", (header, stream, next) => {
          names.push(header.name);
          stream.on("end", next);
          stream.resume();
        });
        extract.on("finish", resolve);
        extract.on("error", reject);
      });
      extract.end(archive);
      await done;
      expect(names.sort()).toEqual(["sub/", "sub/moved.txt"]);
      const putArchive = await spawner.request("PUT", `${base}/files/archive?path=copy`, {
        body: archive,
        unsigned: true,
      });
      expect(await putArchive.json()).toMatchObject({ path: "copy", entries: 2 });
      const copied = await spawner.request("GET", `${base}/files/content?path=copy/sub/moved.txt`);
      expect(await copied.text()).toBe("signed body");

      expect((await spawner.json("DELETE", `${base}/files?path=copy&recursive=true`)).status).toBe(200);
      expect((await spawner.json("GET", `${base}/files/stat?path=copy`)).status).toBe(404);
      const outside = await spawner.json("GET", `${base}/files/content?path=../../etc/passwd`);
      expect(outside.status).toBe(403);
    });

    it("refuses a streamed upload whose bytes are not the ones signed, writing nothing", async () => {
      const path = `${base}/files/content?path=data/tampered.txt`;
      const headers = signRequest({
        keyId: spawner.keyId,
        secret: spawner.secret,
        method: "PUT",
        pathWithQuery: path,
        body: "what was signed",
      });
      const response = await fetch(`${spawner.url}${path}`, { method: "PUT", headers, body: "what was sent instead" });
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ error: { code: "CONTENT_HASH_MISMATCH" } });
      expect((await spawner.json("GET", `${base}/files/stat?path=data/tampered.txt`)).status).toBe(404);
    });

    it("extends and shortens the lifetime within the maxima", async () => {
      const before = SessionResponseSchema.parse((await spawner.json("GET", base)).body).session;
      const longer = await spawner.json("PATCH", base, { ttlMs: 7_200_000, idleTimeoutMs: 900_000 });
      expect(longer.status).toBe(200);
      const after = SessionResponseSchema.parse(longer.body).session;
      expect(after.expiresAt).toBeGreaterThan(before.expiresAt);
      expect(after.idleTimeoutMs).toBe(900_000);
      const reread = SessionResponseSchema.parse((await spawner.json("GET", base)).body).session;
      expect(reread.expiresAt).toBe(after.expiresAt);
      const tooLong = await spawner.json("PATCH", base, { ttlMs: 365 * 24 * 3_600_000 });
      expect(tooLong.status).toBe(400);
      const past = await spawner.json("PATCH", base, { expiresAt: Date.now() - 1000 });
      expect(past.status).toBe(400);
    });

    it("deletes the session with its container or Pod and its workspace", async () => {
      const deleted = await spawner.request("DELETE", base);
      expect(deleted.status).toBe(204);
      // Docker removes at once; a Pod terminates in the background ("gone or going").
      const after = await spawner.json("GET", base);
      if (after.status === 200) expect(SessionResponseSchema.parse(after.body).session.state).toBe("terminating");
      else expect(after.status).toBe(404);
      const call = await spawner.json("POST", `${base}/execs?wait=true`, { argv: ["true"] });
      expect(["SESSION_NOT_FOUND", "SESSION_TERMINATING"]).toContain(ErrorEnvelopeSchema.parse(call.body).error.code);
      expect(await eventually(async () => (await spawner.json("GET", base)).status === 404, 30_000)).toBe(true);
      expect((await spawner.request("DELETE", base)).status).toBe(404);
      expect(await eventually(async () => (await options.leftovers(spawner.deployment)).length === 0, 30_000)).toBe(
        true,
      );
    });
  });
}
