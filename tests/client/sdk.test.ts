import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { type ExecEvent, SandboxClient } from "@sbx/client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerUnavailable, leftovers, removeDeployment } from "../support/docker.js";
import { startFlakyProxy } from "../support/flaky-proxy.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";
import { type SpawnerHandle, startSpawner } from "../support/spawner.js";

const skip = skipUnlessPlatform("Docker", await dockerUnavailable(), "SDK tests");

describe("the TypeScript SDK against a real spawner", skippedBecause(skip), () => {
  let spawner: SpawnerHandle;
  let client: SandboxClient;
  let local: string;
  const id = "sdk";

  beforeAll(async () => {
    spawner = await startSpawner();
    client = new SandboxClient({ baseUrl: spawner.url, keyId: spawner.keyId, secret: spawner.secret });
    local = await mkdtemp(path.join(tmpdir(), "sbx-sdk-"));
  });
  afterAll(async () => {
    await spawner?.stop();
    if (spawner) await removeDeployment(spawner.deployment);
    if (local) await rm(local, { recursive: true, force: true });
  });

  it("creates (idempotently), gets, lists and updates sessions", async () => {
    const request = { id, org: "acme", owner: "sdk@acme.test", labels: { suite: "sdk" }, env: { GREETING: "hi" } };
    const created = await client.createSession(request);
    expect(created).toMatchObject({ id, state: "ready", org: "acme" });
    expect((await client.createSession(request)).createdAt).toBe(created.createdAt);
    expect((await client.getSession(id)).id).toBe(id);
    expect((await client.listSessions({ labels: { suite: "sdk" } })).map((s) => s.id)).toEqual([id]);
    expect((await client.listSessions({ org: "acme", owner: "sdk@acme.test" })).map((s) => s.id)).toEqual([id]);
    expect(await client.listSessions({ labels: { suite: "other" } })).toEqual([]);
    const updated = await client.updateSession(id, { ttlMs: 7_200_000 });
    expect(updated.expiresAt).toBeGreaterThan(created.expiresAt);
    expect((await client.session(id).update({ idleTimeoutMs: 600_000 })).idleTimeoutMs).toBe(600_000);
  });

  it("stops and resumes a session, and a call to a stopped one resumes it", async () => {
    expect(await client.stopSession(id)).toMatchObject({ state: "stopped", stoppable: true });
    expect((await client.resumeSession(id)).state).toBe("ready");
    await client.session(id).stop();
    const result = await client.session(id).run({ shell: 'echo "$GREETING"' });
    expect(result.stdout).toBe("hi\n");
    expect((await client.getSession(id)).state).toBe("ready");
  });

  it("runs commands: run(), iterating a handle, attach(), and the exec list", async () => {
    const session = client.session(id);
    const result = await session.run({ shell: 'echo "$GREETING"; echo oops >&2; exit 4' });
    expect(result).toMatchObject({
      stdout: "hi\n",
      stderr: "oops\n",
      exitCode: 4,
      outcome: "failed",
      truncated: false,
    });
    const handle = await session.exec({
      execId: "counter",
      tag: "sdk",
      shell: "for i in 1 2 3; do echo $i; sleep 0.05; done",
    });
    const events: ExecEvent[] = [];
    for await (const event of handle) events.push(event);
    expect(events.map((e) => e.type)).toEqual(["started", "stdout", "stdout", "stdout", "exit"]);
    expect((await handle.wait()).stdout).toBe("1\n2\n3\n");
    const replay = session.attach("counter", { after: 2 });
    const replayed: number[] = [];
    for await (const event of replay) replayed.push(event.seq);
    expect(replayed).toEqual([3, 4, 5]);
    expect((await session.listExecs({ tag: "sdk" })).map((e) => e.execId)).toEqual(["counter"]);
    expect(await session.getExec("counter")).toMatchObject({ state: "exited", outcome: "completed" });
    await session.forgetExec("counter");
    await expect(session.getExec("counter")).rejects.toMatchObject({ name: "ExecNotFoundError", status: 404 });
  });

  it("cancels, writes stdin, and keeps an exec running when the caller stops following", async () => {
    const session = client.session(id);
    const sleeper = await session.exec({ execId: "sleeper", argv: ["sleep", "300"] });
    await sleeper.cancel("SIGTERM", 1000);
    expect((await sleeper.wait()).outcome).toBe("cancelled");

    const cat = await session.exec({ argv: ["cat"], stdin: { mode: "hold" } });
    await cat.writeStdin("text, ");
    await cat.writeStdin(new Uint8Array([0x62, 0x79, 0x74, 0x65, 0x73]));
    await cat.closeStdin();
    expect((await cat.wait()).stdout).toBe("text, bytes");

    const controller = new AbortController();
    const long = await session.exec({ execId: "long", shell: "sleep 1; echo done" }, { signal: controller.signal });
    controller.abort(new Error("stop following"));
    await expect(long.wait()).rejects.toThrow("stop following");
    const later = await session.attach("long").wait();
    expect(later).toMatchObject({ stdout: "done\n", outcome: "completed" });
    expect((await session.cancelExec("long", "SIGKILL")).state).toBe("exited");
  });

  it("sets env, and moves files as strings, bytes, web streams, Node streams and iterables", async () => {
    const session = client.session(id);
    expect(await session.patchEnv({ set: { TOKEN: "t0ken" }, unset: ["GREETING"] })).toEqual({
      names: ["TOKEN"],
      denied: [],
    });
    expect(await session.envNames()).toEqual(["TOKEN"]);
    const big = randomBytes(2 * 1024 * 1024 + 1);
    await session.writeFile("io/string.txt", "text");
    await session.writeFile("io/bytes.bin", big);
    await session.writeFile("io/web.bin", new Blob([big]).stream());
    await session.writeFile("io/node.bin", Readable.from([big.subarray(0, 1000), big.subarray(1000)]));
    await session.writeFile(
      "io/iterable.txt",
      (async function* () {
        yield new TextEncoder().encode("a");
        yield new TextEncoder().encode("b");
      })(),
      { mode: "0600" },
    );
    expect(new TextDecoder().decode(await session.readFileBytes("io/string.txt"))).toBe("text");
    for (const name of ["io/bytes.bin", "io/web.bin", "io/node.bin"]) {
      const chunks: Uint8Array[] = [];
      for await (const chunk of await session.readFile(name)) chunks.push(chunk);
      expect(Buffer.concat(chunks).equals(big)).toBe(true);
    }
    expect(await session.stat("io/iterable.txt")).toMatchObject({ size: 2, mode: "0600" });
    expect((await session.list("io")).entries.map((e) => e.name)).toEqual([
      "bytes.bin",
      "iterable.txt",
      "node.bin",
      "string.txt",
      "web.bin",
    ]);
    await session.mkdir("io/sub");
    await session.move("io/string.txt", "io/sub/moved.txt");
    await session.remove("io/sub", { recursive: true });
    await expect(session.stat("io/sub")).rejects.toMatchObject({ name: "FileNotFoundError" });
    const fetched = await session.fetchUrl({ url: "http://127.0.0.1:7070/healthz", path: "io/health.json" });
    expect(fetched.size).toBeGreaterThan(0);
  });

  it("copies local files up and down (Node): exact bytes, modes, progress, and no partial file on failure", async () => {
    const session = client.session(id);
    const blob = randomBytes(5 * 1024 * 1024 + 3);
    const source = path.join(local, "tool.bin");
    await writeFile(source, blob, { mode: 0o750 });
    const seen: number[] = [];
    const up = await session.uploadFile(source, "bin/tool.bin", { onProgress: (bytes) => seen.push(bytes) });
    expect(up).toMatchObject({ path: "bin/tool.bin", size: blob.length });
    expect(seen.at(-1)).toBe(blob.length);
    expect((await session.stat("bin/tool.bin")).mode).toBe("0750");

    const back = path.join(local, "tool.back");
    expect(await session.downloadFile("bin/tool.bin", back, { mode: 0o700 })).toBe(blob.length);
    expect((await readFile(back)).equals(blob)).toBe(true);

    // A missing remote file is a typed error, and leaves nothing where the file would have gone.
    const missing = path.join(local, "never.bin");
    await expect(session.downloadFile("no/such.bin", missing)).rejects.toMatchObject({ code: "FILE_NOT_FOUND" });
    expect((await readdir(local)).filter((name) => name.includes("never"))).toEqual([]);
    // A missing local file fails before anything is sent.
    await expect(session.uploadFile(path.join(local, "absent.bin"), "x.bin")).rejects.toMatchObject({
      code: "ENOENT",
    });
  });

  it("round-trips a directory with binary files and links through tar, without whole files in memory", async () => {
    const session = client.session(id);
    const source = path.join(local, "tree");
    await mkdir(path.join(source, "nested/deeper"), { recursive: true });
    const blob = randomBytes(3 * 1024 * 1024 + 7);
    await writeFile(path.join(source, "nested/deeper/blob.bin"), blob);
    await writeFile(path.join(source, "run.sh"), "#!/bin/sh\necho ok\n", { mode: 0o755 });
    await symlink("nested/deeper/blob.bin", path.join(source, "link.bin"));
    let uploaded = 0;
    const up = await session.uploadDirectory(source, "uploaded", {
      onProgress: (p) => {
        uploaded = p.bytes;
      },
    });
    expect(up.entries).toBe(5);
    expect(uploaded).toBe(blob.length + 18);
    const check = await session.run({
      shell: "cd uploaded && sha256sum nested/deeper/blob.bin && ./run.sh && readlink link.bin",
    });
    expect(check.stdout).toContain("ok\nnested/deeper/blob.bin\n");
    const back = path.join(local, "back");
    const down = await session.downloadDirectory("uploaded", back);
    expect(down.entries).toBe(5);
    expect((await readFile(path.join(back, "nested/deeper/blob.bin"))).equals(blob)).toBe(true);
    expect(await readlink(path.join(back, "link.bin"))).toBe("nested/deeper/blob.bin");
  });

  it("delivers every event exactly once, in order, while a proxy keeps cutting the stream", async () => {
    // Cuts land after 80-200 KB of a stream: more than the largest event (one 64 KiB pipe read).
    const proxy = await startFlakyProxy(new URL(spawner.url), { min: 80_000, max: 200_000 });
    try {
      const flaky = new SandboxClient({ baseUrl: proxy.url, keyId: spawner.keyId, secret: spawner.secret });
      let reconnects = 0;
      const handle = await flaky
        .session(id)
        .exec(
          { shell: 'for i in $(seq 1 30000); do echo "line $i of a stream that keeps breaking"; done; sleep 0.2' },
          { maxReconnects: 50, onReconnect: () => reconnects++ },
        );
      const seqs: number[] = [];
      let text = "";
      for await (const event of handle) {
        seqs.push(event.seq);
        if (event.type === "stdout" && "text" in event.data) text += event.data.text;
        expect(event.type).not.toBe("gap");
      }
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
      expect(text.split("\n").slice(0, -1)).toEqual(
        Array.from({ length: 30000 }, (_, i) => `line ${i + 1} of a stream that keeps breaking`),
      );
      expect(proxy.cuts()).toBeGreaterThan(3);
      expect(reconnects).toBe(proxy.cuts());
    } finally {
      await proxy.close();
    }
  });

  it("deletes the session and everything it had", async () => {
    await client.deleteSession(id);
    await expect(client.getSession(id)).rejects.toMatchObject({
      name: "SessionNotFoundError",
      code: "SESSION_NOT_FOUND",
    });
    expect(await leftovers(spawner.deployment)).toMatchObject({ containers: [], volumes: [] });
  });
});
