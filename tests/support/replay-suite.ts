import {
  ErrorEnvelopeSchema,
  ExecInfoSchema,
  ExecResultSchema,
  SessionListResponseSchema,
  SessionResponseSchema,
  signRequest,
  UNSIGNED_PAYLOAD,
} from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { eventually } from "./proc.js";
import { skippedBecause } from "./skips.js";
import type { SpawnerHandle, StartSpawnerOptions } from "./spawner.js";

export interface ReplaySuiteOptions {
  backend: "docker" | "kubernetes";
  /** Why the suite cannot run here (it is then skipped and says so). */
  skip: string | undefined;
  /** A spawner replica; the second is started with the first's deployment and secrets. */
  start(options: StartSpawnerOptions): Promise<SpawnerHandle>;
  cleanup(deployment: string): Promise<void>;
  /** Extra fields of a create that make a stoppable session. */
  stoppable: Record<string, unknown>;
}

interface Answer {
  status: number;
  body: unknown;
  text: string;
}

/**
 * A signed request captured on its way to one replica (a proxy log, a retrying client) and sent
 * again, byte for byte with the very same headers, to another replica within the signature's
 * window: every mutating route acts once.
 */
export function runReplaySuite(options: ReplaySuiteOptions): void {
  describe(`a signed request resent to another replica (${options.backend})`, skippedBecause(options.skip), () => {
    let a: SpawnerHandle;
    let b: SpawnerHandle;

    beforeAll(async () => {
      a = await options.start({});
      b = await options.start({
        deployment: a.deployment,
        secrets: { secret: a.secret, runnerdSecret: a.runnerdSecret },
      });
    });
    afterAll(async () => {
      await Promise.all([a?.stop(), b?.stop()]);
      if (a) await options.cleanup(a.deployment);
    });

    /** Sends one signed request to replica A, then the very same one to replica B. */
    const replayed = async (
      method: string,
      path: string,
      body?: string,
      unsigned = false,
    ): Promise<{ first: Answer; second: Answer }> => {
      const headers = signRequest({
        keyId: a.keyId,
        secret: a.secret,
        method,
        pathWithQuery: path,
        body: unsigned ? UNSIGNED_PAYLOAD : body,
      });
      const send = async (to: SpawnerHandle): Promise<Answer> => {
        const response = await fetch(`${to.url}${path}`, {
          method,
          headers,
          ...(body === undefined ? {} : { body }),
        });
        const text = await response.text();
        let parsed: unknown;
        try {
          parsed = text === "" ? undefined : JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        return { status: response.status, body: parsed, text };
      };
      const first = await send(a);
      return { first, second: await send(b) };
    };
    const json = (value: unknown) => JSON.stringify(value);
    const codeOf = (answer: Answer) => ErrorEnvelopeSchema.safeParse(answer.body).data?.error.code;
    const run = async (id: string, shell: string) => {
      const result = await a.json("POST", `/v1/sessions/${id}/execs?wait=true`, { shell });
      expect(result.status, json(result.body)).toBe(200);
      return ExecResultSchema.parse(result.body).stdout;
    };

    it("creates one session: a create without an id, resent, names the same session", async () => {
      const { first, second } = await replayed("POST", "/v1/sessions", json({ org: "replay" }));
      expect(first.status, first.text).toBe(201);
      expect(second.status, second.text).toBe(200);
      const id = SessionResponseSchema.parse(first.body).session.id;
      expect(SessionResponseSchema.parse(second.body).session.id).toBe(id);
      const listed = await b.json("GET", "/v1/sessions?org=replay");
      expect(SessionListResponseSchema.parse(listed.body).sessions).toHaveLength(1);
      expect((await a.request("DELETE", `/v1/sessions/${id}`)).status).toBe(204);
    });

    it("acts once on every mutating session call: execs, stdin, cancel, env, files, lifetime", async () => {
      const id = "replays";
      expect((await a.json("POST", "/v1/sessions", { id, org: "replay" })).status).toBe(201);
      const base = `/v1/sessions/${id}`;
      const once = (answer: { first: Answer; second: Answer }, what: string) => {
        expect(answer.first.status, `${what}: ${answer.first.text}`).toBeLessThan(300);
        expect([answer.second.status, codeOf(answer.second)], `${what}: ${answer.second.text}`).toEqual([
          401,
          "NONCE_REPLAYED",
        ]);
      };

      once(await replayed("POST", `${base}/execs?wait=true`, json({ shell: "echo run >> runs.txt" })), "exec (wait)");
      const streamed = await replayed("POST", `${base}/execs`, json({ shell: "echo run >> streamed.txt" }));
      once(streamed, "exec (stream)");
      expect(await run(id, "sleep 0.3; cat runs.txt streamed.txt")).toBe("run\nrun\n");

      /** Starts an exec whose stream is not followed (it runs on). */
      const startDetached = async (body: unknown) => {
        const response = await a.request("POST", `${base}/execs`, { body: json(body) });
        expect(response.status).toBe(200);
        await response.body?.cancel();
      };
      await startDetached({ execId: "holder", shell: "cat > stdin.txt", stdin: { mode: "hold" } });
      once(await replayed("POST", `${base}/execs/holder/stdin`, json({ text: "typed once\n" })), "stdin");
      once(await replayed("POST", `${base}/execs/holder/stdin`, json({ eof: true })), "stdin close");
      expect(
        await eventually(async () => (await run(id, "cat stdin.txt 2>/dev/null || true")) === "typed once\n", 5000),
      ).toBe(true);

      await startDetached({ execId: "sleeper", argv: ["sleep", "600"] });
      once(await replayed("POST", `${base}/execs/sleeper/cancel`, json({})), "cancel");
      const cancelled = async () =>
        ExecInfoSchema.parse((await a.json("GET", `${base}/execs/sleeper`)).body).outcome === "cancelled";
      expect(await eventually(cancelled, 10_000)).toBe(true);
      once(await replayed("PATCH", `${base}/env`, json({ set: { REPLAYED: "once" } })), "env");
      once(await replayed("PUT", `${base}/files/content?path=up.txt`, "uploaded", true), "file write");
      once(await replayed("POST", `${base}/files/mkdir`, json({ path: "made" })), "mkdir");
      once(await replayed("POST", `${base}/files/move`, json({ from: "up.txt", to: "made/up.txt" })), "move");
      once(await replayed("DELETE", `${base}/files?path=made&recursive=true`), "delete file");
      await a.json("POST", `${base}/execs?wait=true`, { execId: "done", argv: ["true"] });
      once(await replayed("DELETE", `${base}/execs/done`), "forget exec");
      once(await replayed("PATCH", base, json({ ttlMs: 600_000 })), "lifetime");
      expect((await a.request("DELETE", base)).status).toBe(204);
    });

    it("stops, resumes and deletes once: a replay is refused, or finds nothing left to do", async () => {
      const id = "replay-life";
      expect((await a.json("POST", "/v1/sessions", { id, org: "replay", ...options.stoppable })).status).toBe(201);
      const base = `/v1/sessions/${id}`;
      const stopHeaders = signRequest({
        keyId: a.keyId,
        secret: a.secret,
        method: "POST",
        pathWithQuery: `${base}/stop`,
      });
      const stop = (to: SpawnerHandle) => fetch(`${to.url}${base}/stop`, { method: "POST", headers: stopHeaders });
      expect((await stop(a)).status).toBe(200);
      // Resent while stopped: stopping a stopped session does nothing.
      const again = await stop(b);
      expect(again.status).toBe(200);
      expect(SessionResponseSchema.parse(await again.json()).session.state).toBe("stopped");
      // Resent after a resume: refused, the session keeps running.
      expect((await a.json("POST", `${base}/resume`)).status).toBe(200);
      const late = await stop(b);
      expect([late.status, ErrorEnvelopeSchema.parse(await late.json()).error.code]).toEqual([401, "NONCE_REPLAYED"]);
      expect(SessionResponseSchema.parse((await a.json("GET", base)).body).session.state).toBe("ready");
      // A resume resent to a running session finds it running.
      const resume = await replayed("POST", `${base}/resume`);
      expect([resume.first.status, resume.second.status]).toEqual([200, 200]);
      // A delete resent finds the session gone (404), or going (204: Kubernetes ends Pods in the background).
      const removed = await replayed("DELETE", base);
      expect(removed.first.status).toBe(204);
      expect([204, 404]).toContain(removed.second.status);
      expect(await eventually(async () => (await a.json("GET", base)).status === 404, 60_000)).toBe(true);
    });
  });
}
