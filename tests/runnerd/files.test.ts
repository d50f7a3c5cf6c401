import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, stat, symlink, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import {
  ArchiveExtractResponseSchema,
  DeleteResponseSchema,
  ErrorEnvelopeSchema,
  FetchResponseSchema,
  FileInfoSchema,
  FileListResponseSchema,
  FileWriteResponseSchema,
  MkdirResponseSchema,
  MoveResponseSchema,
} from "@sbx/protocol";
import * as tar from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunnerdHandle, startRunnerd } from "../support/runnerd.js";

let runnerd: RunnerdHandle;
/** A directory beside the workspace that no request may read or change. */
let outsideDir: string;
/** Makes names outside the workspace unique to this run, so "does not exist" means something. */
const tag = randomBytes(4).toString("hex");

beforeAll(async () => {
  runnerd = await startRunnerd();
  outsideDir = await mkdtemp(path.join(tmpdir(), "runnerd-outside-"));
  await writeFile(path.join(outsideDir, "secret.txt"), "outside secret");
});
afterAll(async () => {
  await runnerd?.stop();
  if (outsideDir) await rm(outsideDir, { recursive: true, force: true });
});

const q = encodeURIComponent;
const onDisk = (rel: string) => path.join(runnerd.root, rel);
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

async function expectError(response: Response, status: number, code: string): Promise<void> {
  const text = await response.text();
  const envelope = ErrorEnvelopeSchema.safeParse(text === "" ? undefined : JSON.parse(text));
  // On a wrong answer, show the whole body: a success where an error belongs says most.
  const seen = envelope.success ? envelope.data.error.code : text;
  expect({ status: response.status, code: seen }, envelope.success ? envelope.data.error.message : text).toEqual({
    status,
    code,
  });
}

const put = (rel: string, body: string | Uint8Array, mode?: string) =>
  runnerd.request(`/v1/files/content?path=${q(rel)}${mode === undefined ? "" : `&mode=${mode}`}`, {
    method: "PUT",
    body,
  });

async function written(rel: string, body: string | Uint8Array, mode?: string) {
  const response = await put(rel, body, mode);
  expect(response.status).toBe(200);
  return FileWriteResponseSchema.parse(await response.json());
}

async function statOf(rel: string) {
  const { status, body } = await runnerd.json("GET", `/v1/files/stat?path=${q(rel)}`);
  expect(status).toBe(200);
  return FileInfoSchema.parse(body);
}

async function listOf(rel: string, depth: number) {
  const { status, body } = await runnerd.json("GET", `/v1/files/list?path=${q(rel)}&depth=${depth}`);
  expect(status).toBe(200);
  return FileListResponseSchema.parse(body);
}

const permissions = async (abs: string) => (await stat(abs)).mode & 0o7777;

/** Every name under `dir`, recursively, `/`-separated; what a "nothing left behind" check compares. */
async function namesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.map((name) => name.split(path.sep).join("/")).sort();
}

interface ArchiveEntry {
  header: Partial<tar.Header> & { name: string };
  body?: string | Uint8Array;
}

/** A tar archive built in memory, so hostile entries can be crafted exactly. */
async function tarOf(entries: ArchiveEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  for (const entry of entries) {
    if (entry.body === undefined) pack.entry(entry.header);
    else pack.entry(entry.header, entry.body);
  }
  pack.finalize();
  const chunks: Uint8Array[] = [];
  for await (const chunk of pack) {
    if (!(chunk instanceof Uint8Array)) throw new TypeError("tar pack produced a non-byte chunk");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function entryNamesOf(archive: Uint8Array): Promise<string[]> {
  const extract = tar.extract();
  const names: string[] = [];
  const reading = (async () => {
    for await (const entry of extract) {
      names.push(entry.header.name);
      entry.resume();
    }
  })();
  extract.end(archive);
  await reading;
  return names;
}

const putArchive = (rel: string, body: Uint8Array) =>
  runnerd.request(`/v1/files/archive?path=${q(rel)}`, { method: "PUT", body });

describe("content", () => {
  it("round-trips several MiB of random bytes exactly and reports their size and sha256", async () => {
    const bytes = randomBytes(3 * 1024 * 1024 + 123);
    const result = await written("roundtrip/blob.bin", bytes);
    expect(result).toEqual({ path: "roundtrip/blob.bin", size: bytes.length, sha256: sha256(bytes) });

    const response = await runnerd.request(`/v1/files/content?path=${q("roundtrip/blob.bin")}`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/octet-stream");
    expect(response.headers.get("content-length")).toBe(String(bytes.length));
    const downloaded = Buffer.from(await response.arrayBuffer());
    expect(downloaded.equals(bytes)).toBe(true);
    expect((await readFile(onDisk("roundtrip/blob.bin"))).equals(bytes)).toBe(true);
  });

  it("creates missing parent directories on write", async () => {
    await written("parents/a/b/c/file.txt", "deep");
    expect(await readFile(onDisk("parents/a/b/c/file.txt"), "utf8")).toBe("deep");
    expect((await statOf("parents/a/b")).type).toBe("directory");
  });

  it("leaves no temporary files beside the written file, also after an overwrite", async () => {
    await written("tidy/one.txt", "first");
    await written("tidy/one.txt", "second");
    await written("tidy/two.txt", randomBytes(64 * 1024));
    expect(await namesUnder(onDisk("tidy"))).toEqual(["one.txt", "two.txt"]);
    expect(await readFile(onDisk("tidy/one.txt"), "utf8")).toBe("second");
  });

  it("never tears a file under concurrent writers: the result is one whole upload", async () => {
    const uploads = Array.from({ length: 6 }, () => randomBytes(512 * 1024));
    const results = await Promise.all(uploads.map((bytes) => written("racing/file.bin", bytes)));
    expect(results.map((r) => r.size)).toEqual(uploads.map((u) => u.length));
    const final = await readFile(onDisk("racing/file.bin"));
    expect(uploads.some((bytes) => bytes.equals(final))).toBe(true);
    expect(await namesUnder(onDisk("racing"))).toEqual(["file.bin"]);
  });

  it("writes an empty body as an empty file", async () => {
    expect(await written("empty/nothing.txt", "")).toEqual({
      path: "empty/nothing.txt",
      size: 0,
      sha256: sha256(new Uint8Array()),
    });
    expect((await stat(onDisk("empty/nothing.txt"))).size).toBe(0);
  });

  it("sets permission bits from mode, keeps them on an overwrite without mode, and defaults to 0644", async () => {
    await written("modes/tool.sh", "#!/bin/sh\n", "0750");
    expect(await permissions(onDisk("modes/tool.sh"))).toBe(0o750);
    expect((await statOf("modes/tool.sh")).mode).toBe("0750");

    await written("modes/tool.sh", "#!/bin/sh\necho changed\n");
    expect(await permissions(onDisk("modes/tool.sh"))).toBe(0o750);
    expect(await readFile(onDisk("modes/tool.sh"), "utf8")).toBe("#!/bin/sh\necho changed\n");

    await written("modes/tool.sh", "#!/bin/sh\n", "600");
    expect(await permissions(onDisk("modes/tool.sh"))).toBe(0o600);

    await written("modes/plain.txt", "x");
    expect(await permissions(onDisk("modes/plain.txt"))).toBe(0o644);
  });

  it("refuses a malformed mode with 400 VALIDATION_FAILED and writes nothing", async () => {
    await expectError(await put("modes/bad.txt", "x", "0999"), 400, "VALIDATION_FAILED");
    expect(existsSync(onDisk("modes/bad.txt"))).toBe(false);
  });

  it("answers 404 FILE_NOT_FOUND for a missing file and 409 IS_A_DIRECTORY for a directory", async () => {
    await expectError(await runnerd.request("/v1/files/content?path=no/such/file"), 404, "FILE_NOT_FOUND");
    await mkdir(onDisk("content-dir"), { recursive: true });
    await expectError(await runnerd.request("/v1/files/content?path=content-dir"), 409, "IS_A_DIRECTORY");
    await expectError(await put("content-dir", "x"), 409, "IS_A_DIRECTORY");
    expect((await stat(onDisk("content-dir"))).isDirectory()).toBe(true);
  });
});

describe("stat and list", () => {
  beforeAll(async () => {
    await written("tree-list/a.txt", "aaa");
    await written("tree-list/sub/b.txt", "bb");
    await written("tree-list/sub/deeper/c.txt", "c");
    await symlink("a.txt", onDisk("tree-list/link-to-a"));
  });

  it("describes a file, a directory and a symlink (without following it)", async () => {
    const file = await statOf("tree-list/a.txt");
    expect(file).toMatchObject({ path: "tree-list/a.txt", name: "a.txt", type: "file", size: 3, mode: "0644" });
    expect(file.target).toBeUndefined();

    const dir = await statOf("tree-list/sub");
    expect(dir).toMatchObject({ path: "tree-list/sub", name: "sub", type: "directory" });

    const link = await statOf("tree-list/link-to-a");
    expect(link).toMatchObject({ path: "tree-list/link-to-a", name: "link-to-a", type: "symlink", target: "a.txt" });

    expect(await statOf(".")).toMatchObject({ path: ".", name: ".", type: "directory" });
  });

  it("answers 404 FILE_NOT_FOUND for stat of a missing path", async () => {
    await expectError(await runnerd.request("/v1/files/stat?path=tree-list/missing"), 404, "FILE_NOT_FOUND");
  });

  it("lists one level by default, with workspace-relative entry paths", async () => {
    const listing = await listOf("tree-list", 1);
    expect(listing.path).toBe("tree-list");
    expect(listing.truncated).toBe(false);
    expect(listing.entries.map((e) => [e.path, e.type])).toEqual([
      ["tree-list/a.txt", "file"],
      ["tree-list/link-to-a", "symlink"],
      ["tree-list/sub", "directory"],
    ]);
  });

  it("lists two levels with depth=2 but not the third", async () => {
    const listing = await listOf("tree-list", 2);
    expect(listing.entries.map((e) => e.path)).toEqual([
      "tree-list/a.txt",
      "tree-list/link-to-a",
      "tree-list/sub",
      "tree-list/sub/b.txt",
      "tree-list/sub/deeper",
    ]);
  });

  it("answers 409 NOT_A_DIRECTORY for a listing of a file", async () => {
    await expectError(await runnerd.request("/v1/files/list?path=tree-list/a.txt"), 409, "NOT_A_DIRECTORY");
  });
});

describe("delete", () => {
  it("deletes a file", async () => {
    await written("del/file.txt", "x");
    const { status, body } = await runnerd.json("DELETE", `/v1/files?path=${q("del/file.txt")}`);
    expect(status).toBe(200);
    expect(DeleteResponseSchema.parse(body)).toEqual({ path: "del/file.txt" });
    expect(existsSync(onDisk("del/file.txt"))).toBe(false);
  });

  it("refuses a non-empty directory with 409 DIRECTORY_NOT_EMPTY unless recursive", async () => {
    await written("del/full/inner/x.txt", "x");
    await expectError(
      await runnerd.request("/v1/files?path=del/full", { method: "DELETE" }),
      409,
      "DIRECTORY_NOT_EMPTY",
    );
    expect(existsSync(onDisk("del/full/inner/x.txt"))).toBe(true);

    const { status, body } = await runnerd.json("DELETE", "/v1/files?path=del/full&recursive=true");
    expect(status).toBe(200);
    expect(DeleteResponseSchema.parse(body)).toEqual({ path: "del/full" });
    expect(existsSync(onDisk("del/full"))).toBe(false);
  });

  it("deletes an empty directory without recursive", async () => {
    await mkdir(onDisk("del/empty"), { recursive: true });
    expect((await runnerd.json("DELETE", "/v1/files?path=del/empty")).status).toBe(200);
    expect(existsSync(onDisk("del/empty"))).toBe(false);
  });

  it("deletes a symlink, not what it points to", async () => {
    await written("del/target.txt", "kept");
    await symlink("target.txt", onDisk("del/link"));
    expect((await runnerd.json("DELETE", "/v1/files?path=del/link")).status).toBe(200);
    expect(existsSync(onDisk("del/link"))).toBe(false);
    expect(await readFile(onDisk("del/target.txt"), "utf8")).toBe("kept");
  });

  it.each([".", "sub/..", "ROOT"])("refuses to delete the workspace root given as %s", async (spelling) => {
    const rootPath = spelling === "ROOT" ? runnerd.root : spelling;
    await written("del/canary.txt", "still here");
    const response = await runnerd.request(`/v1/files?path=${q(rootPath)}&recursive=true`, { method: "DELETE" });
    await expectError(response, 400, "INVALID_PATH");
    expect(await readFile(onDisk("del/canary.txt"), "utf8")).toBe("still here");
  });

  it("answers 404 FILE_NOT_FOUND for a missing path", async () => {
    await expectError(await runnerd.request("/v1/files?path=del/missing", { method: "DELETE" }), 404, "FILE_NOT_FOUND");
  });
});

describe("mkdir", () => {
  it("creates a directory with 201, then answers 200 without change when it exists", async () => {
    const first = await runnerd.json("POST", "/v1/files/mkdir", { path: "made/a/b" });
    expect(first.status).toBe(201);
    expect(MkdirResponseSchema.parse(first.body)).toEqual({ path: "made/a/b", created: true });
    expect((await stat(onDisk("made/a/b"))).isDirectory()).toBe(true);

    const second = await runnerd.json("POST", "/v1/files/mkdir", { path: "made/a/b" });
    expect(second.status).toBe(200);
    expect(MkdirResponseSchema.parse(second.body)).toEqual({ path: "made/a/b", created: false });
  });

  it("answers 409 when a file is in the way, and leaves the file alone", async () => {
    await written("made/file", "a file");
    const response = await runnerd.request("/v1/files/mkdir", {
      method: "POST",
      body: JSON.stringify({ path: "made/file" }),
    });
    await expectError(response, 409, "ALREADY_EXISTS");
    const below = await runnerd.request("/v1/files/mkdir", {
      method: "POST",
      body: JSON.stringify({ path: "made/file/below" }),
    });
    await expectError(below, 409, "NOT_A_DIRECTORY");
    expect(await readFile(onDisk("made/file"), "utf8")).toBe("a file");
  });
});

describe("move", () => {
  const move = (body: unknown) => runnerd.request("/v1/files/move", { method: "POST", body: JSON.stringify(body) });

  it("moves a file to a new path, creating its parents", async () => {
    await written("mv/src.txt", "moving");
    const response = await move({ from: "mv/src.txt", to: "mv/new/place.txt" });
    expect(response.status).toBe(200);
    expect(MoveResponseSchema.parse(await response.json())).toEqual({ from: "mv/src.txt", to: "mv/new/place.txt" });
    expect(existsSync(onDisk("mv/src.txt"))).toBe(false);
    expect(await readFile(onDisk("mv/new/place.txt"), "utf8")).toBe("moving");
  });

  it("moves a directory with its contents", async () => {
    await written("mv/dir/inner/f.txt", "f");
    expect((await move({ from: "mv/dir", to: "mv/dir2" })).status).toBe(200);
    expect(await readFile(onDisk("mv/dir2/inner/f.txt"), "utf8")).toBe("f");
    expect(existsSync(onDisk("mv/dir"))).toBe(false);
  });

  it("refuses to replace an existing target with 409 ALREADY_EXISTS unless overwrite is set", async () => {
    await written("mv/a.txt", "a");
    await written("mv/b.txt", "b");
    await expectError(await move({ from: "mv/a.txt", to: "mv/b.txt" }), 409, "ALREADY_EXISTS");
    expect(await readFile(onDisk("mv/a.txt"), "utf8")).toBe("a");
    expect(await readFile(onDisk("mv/b.txt"), "utf8")).toBe("b");

    const response = await move({ from: "mv/a.txt", to: "mv/b.txt", overwrite: true });
    expect(response.status).toBe(200);
    expect(MoveResponseSchema.parse(await response.json())).toEqual({ from: "mv/a.txt", to: "mv/b.txt" });
    expect(existsSync(onDisk("mv/a.txt"))).toBe(false);
    expect(await readFile(onDisk("mv/b.txt"), "utf8")).toBe("a");
  });

  it("answers 404 FILE_NOT_FOUND when the source is missing", async () => {
    await expectError(await move({ from: "mv/missing.txt", to: "mv/whatever.txt" }), 404, "FILE_NOT_FOUND");
    expect(existsSync(onDisk("mv/whatever.txt"))).toBe(false);
  });

  it("refuses to move a directory into itself with 400 INVALID_PATH", async () => {
    await written("mv/self/f.txt", "f");
    await expectError(await move({ from: "mv/self", to: "mv/self/inside" }), 400, "INVALID_PATH");
    expect(await namesUnder(onDisk("mv/self"))).toEqual(["f.txt"]);
  });
});

describe("lexical traversal", () => {
  const escapeName = `runnerd-escape-${tag}`;
  /** Where `../escapeName` and `a/../../escapeName` would land if they were not refused. */
  const escapedTo = () => path.resolve(runnerd.root, "..", escapeName);
  const victim = () => path.join(outsideDir, "victim.txt");
  /**
   * Reads also try /etc/passwd; mutations use an absolute path in a scratch
   * directory instead, so a regression could never damage the host.
   */
  const readInputs = () => [`../${escapeName}`, `a/../../${escapeName}`, "/etc/passwd", victim()];
  const writeInputs = () => [`../${escapeName}`, `a/../../${escapeName}`, victim()];

  beforeAll(async () => {
    await writeFile(victim(), "victim");
    await written("traversal/inside.txt", "inside");
  });

  const expectNothingOutsideChanged = async () => {
    expect(existsSync(escapedTo())).toBe(false);
    expect(await readFile(victim(), "utf8")).toBe("victim");
    expect(existsSync(onDisk("a"))).toBe(false);
  };

  it("refuses reads of content, stat, list and archive with 403 PATH_OUTSIDE_ROOT", async () => {
    for (const input of readInputs()) {
      for (const route of ["content", "stat", "list", "archive"]) {
        await expectError(await runnerd.request(`/v1/files/${route}?path=${q(input)}`), 403, "PATH_OUTSIDE_ROOT");
      }
    }
  });

  it("refuses writes with 403 PATH_OUTSIDE_ROOT and creates nothing outside", async () => {
    for (const input of writeInputs()) {
      await expectError(await put(input, "escaped"), 403, "PATH_OUTSIDE_ROOT");
      await expectError(await put(`${input}/deeper/file`, "escaped"), 403, "PATH_OUTSIDE_ROOT");
    }
    await expectNothingOutsideChanged();
  });

  it("refuses deletes with 403 PATH_OUTSIDE_ROOT and removes nothing outside", async () => {
    for (const input of writeInputs()) {
      const response = await runnerd.request(`/v1/files?path=${q(input)}&recursive=true`, { method: "DELETE" });
      await expectError(response, 403, "PATH_OUTSIDE_ROOT");
    }
    await expectNothingOutsideChanged();
  });

  it("refuses moves out of and into the outside with 403 PATH_OUTSIDE_ROOT", async () => {
    for (const input of writeInputs()) {
      const out = await runnerd.request("/v1/files/move", {
        method: "POST",
        body: JSON.stringify({ from: "traversal/inside.txt", to: input, overwrite: true }),
      });
      await expectError(out, 403, "PATH_OUTSIDE_ROOT");
      const into = await runnerd.request("/v1/files/move", {
        method: "POST",
        body: JSON.stringify({ from: input, to: "traversal/stolen.txt" }),
      });
      await expectError(into, 403, "PATH_OUTSIDE_ROOT");
    }
    expect(await readFile(onDisk("traversal/inside.txt"), "utf8")).toBe("inside");
    expect(existsSync(onDisk("traversal/stolen.txt"))).toBe(false);
    await expectNothingOutsideChanged();
  });

  it("refuses mkdir, archive extraction and fetch targets outside with 403 PATH_OUTSIDE_ROOT", async () => {
    const archive = await tarOf([{ header: { name: "x.txt" }, body: "x" }]);
    for (const input of writeInputs()) {
      const made = await runnerd.request("/v1/files/mkdir", { method: "POST", body: JSON.stringify({ path: input }) });
      await expectError(made, 403, "PATH_OUTSIDE_ROOT");
      await expectError(await putArchive(input, archive), 403, "PATH_OUTSIDE_ROOT");
      const fetched = await runnerd.request("/v1/files/fetch", {
        method: "POST",
        body: JSON.stringify({ url: "http://127.0.0.1:9/never", path: input }),
      });
      await expectError(fetched, 403, "PATH_OUTSIDE_ROOT");
    }
    await expectNothingOutsideChanged();
  });

  it("accepts an absolute path that lies inside the workspace", async () => {
    const result = await written(path.join(runnerd.root, "traversal", "absolute.txt"), "abs");
    expect(result.path).toBe("traversal/absolute.txt");
    expect(await readFile(onDisk("traversal/absolute.txt"), "utf8")).toBe("abs");
  });
});

describe("symlink escape", () => {
  beforeAll(async () => {
    await symlink(outsideDir, onDisk("escape-link"));
    await symlink(path.join(outsideDir, "secret.txt"), onDisk("escape-file-link"));
  });

  const outsideNames = () => namesUnder(outsideDir);

  it("refuses reading through a link that leads out with 403", async () => {
    await expectError(await runnerd.request("/v1/files/content?path=escape-link/secret.txt"), 403, "PATH_OUTSIDE_ROOT");
    await expectError(await runnerd.request("/v1/files/content?path=escape-file-link"), 403, "PATH_OUTSIDE_ROOT");
    await expectError(await runnerd.request("/v1/files/stat?path=escape-link/secret.txt"), 403, "PATH_OUTSIDE_ROOT");
    await expectError(await runnerd.request("/v1/files/archive?path=escape-link"), 403, "PATH_OUTSIDE_ROOT");
  });

  it("refuses listing a link that leads out with 403, while stat of the link itself is allowed", async () => {
    await expectError(await runnerd.request("/v1/files/list?path=escape-link"), 403, "PATH_OUTSIDE_ROOT");
    await expectError(await runnerd.request("/v1/files/list?path=escape-link&depth=2"), 403, "PATH_OUTSIDE_ROOT");
    expect(await statOf("escape-link")).toMatchObject({ type: "symlink", target: outsideDir });
  });

  it("does not enter a link that leads out when listing its parent", async () => {
    const listing = await listOf(".", 3);
    expect(listing.entries.find((e) => e.path === "escape-link")?.type).toBe("symlink");
    expect(listing.entries.some((e) => e.path.startsWith("escape-link/"))).toBe(false);
  });

  it("refuses writing through a link that leads out with 403 and writes nothing outside", async () => {
    const before = await outsideNames();
    await expectError(await put("escape-link/newfile", "escaped"), 403, "PATH_OUTSIDE_ROOT");
    await expectError(await put("escape-link/sub/newfile", "escaped"), 403, "PATH_OUTSIDE_ROOT");
    await expectError(await put("escape-link/secret.txt", "overwritten"), 403, "PATH_OUTSIDE_ROOT");
    const made = await runnerd.request("/v1/files/mkdir", {
      method: "POST",
      body: JSON.stringify({ path: "escape-link/made" }),
    });
    await expectError(made, 403, "PATH_OUTSIDE_ROOT");
    const archive = await tarOf([{ header: { name: "x.txt" }, body: "x" }]);
    await expectError(await putArchive("escape-link", archive), 403, "PATH_OUTSIDE_ROOT");
    await expectError(await putArchive("escape-link/sub", archive), 403, "PATH_OUTSIDE_ROOT");
    expect(await outsideNames()).toEqual(before);
    expect(await readFile(path.join(outsideDir, "secret.txt"), "utf8")).toBe("outside secret");
  });

  it("refuses deleting and moving through a link that leads out with 403", async () => {
    await written("escape-src.txt", "src");
    const before = await outsideNames();
    await expectError(
      await runnerd.request("/v1/files?path=escape-link/secret.txt", { method: "DELETE" }),
      403,
      "PATH_OUTSIDE_ROOT",
    );
    for (const body of [
      { from: "escape-link/secret.txt", to: "stolen.txt" },
      { from: "escape-src.txt", to: "escape-link/planted.txt" },
    ]) {
      const response = await runnerd.request("/v1/files/move", { method: "POST", body: JSON.stringify(body) });
      await expectError(response, 403, "PATH_OUTSIDE_ROOT");
    }
    expect(await outsideNames()).toEqual(before);
    expect(existsSync(onDisk("stolen.txt"))).toBe(false);
    expect(existsSync(onDisk("escape-src.txt"))).toBe(true);
  });

  it("answers 409 NOT_A_DIRECTORY beneath a dangling link that leads out, and creates nothing where it points", async () => {
    const missing = path.join(outsideDir, "not-yet");
    await symlink(missing, onDisk("dangling-link"));
    const archive = await tarOf([{ header: { name: "x.txt" }, body: "x" }]);
    for (const beneath of ["dangling-link/x", "dangling-link/sub/x"]) {
      await expectError(await put(beneath, "x"), 409, "NOT_A_DIRECTORY");
      const made = await runnerd.request("/v1/files/mkdir", {
        method: "POST",
        body: JSON.stringify({ path: beneath }),
      });
      await expectError(made, 409, "NOT_A_DIRECTORY");
      await expectError(await putArchive(beneath, archive), 409, "NOT_A_DIRECTORY");
      const fetched = await runnerd.request("/v1/files/fetch", {
        method: "POST",
        body: JSON.stringify({ url: "http://127.0.0.1:9/never", path: beneath }),
      });
      await expectError(fetched, 409, "NOT_A_DIRECTORY");
    }
    // The link itself as the directory to make or extract into: it leads nowhere.
    const made = await runnerd.request("/v1/files/mkdir", {
      method: "POST",
      body: JSON.stringify({ path: "dangling-link" }),
    });
    await expectError(made, 404, "FILE_NOT_FOUND");
    await expectError(await putArchive("dangling-link", archive), 404, "FILE_NOT_FOUND");
    expect(existsSync(missing)).toBe(false);
    expect((await lstat(onDisk("dangling-link"))).isSymbolicLink()).toBe(true);
  });

  it("deletes a link that leads out, even recursively, without touching what it points to", async () => {
    await symlink(outsideDir, onDisk("escape-link-to-delete"));
    const before = await outsideNames();
    const { status } = await runnerd.json("DELETE", "/v1/files?path=escape-link-to-delete&recursive=true");
    expect(status).toBe(200);
    expect(existsSync(onDisk("escape-link-to-delete"))).toBe(false);
    expect(await outsideNames()).toEqual(before);
  });

  it("archives a link that leads out as a link, never the outside content", async () => {
    const response = await runnerd.request("/v1/files/archive?path=.");
    expect(response.status).toBe(200);
    const names = await entryNamesOf(new Uint8Array(await response.arrayBuffer()));
    expect(names).toContain("escape-link");
    expect(names.some((name) => name.startsWith("escape-link/"))).toBe(false);
  });

  it("extracts over a link that leads out by replacing the link, never writing through it", async () => {
    await mkdir(onDisk("extract-over-link"), { recursive: true });
    await symlink(outsideDir, onDisk("extract-over-link/sub"));
    await symlink(path.join(outsideDir, "secret.txt"), onDisk("extract-over-link/file"));
    const before = await outsideNames();
    const archive = await tarOf([
      { header: { name: "sub/x.txt" }, body: "inside" },
      { header: { name: "file" }, body: "replaced" },
    ]);
    expect((await putArchive("extract-over-link", archive)).status).toBe(200);
    expect((await lstat(onDisk("extract-over-link/sub"))).isDirectory()).toBe(true);
    expect(await readFile(onDisk("extract-over-link/sub/x.txt"), "utf8")).toBe("inside");
    expect((await lstat(onDisk("extract-over-link/file"))).isFile()).toBe(true);
    expect(await outsideNames()).toEqual(before);
    expect(await readFile(path.join(outsideDir, "secret.txt"), "utf8")).toBe("outside secret");
  });

  it("replaces a link that leads out when it is itself the write target, leaving its target alone", async () => {
    await symlink(path.join(outsideDir, "secret.txt"), onDisk("replaced-link"));
    await written("replaced-link", "now a file");
    expect((await lstat(onDisk("replaced-link"))).isFile()).toBe(true);
    expect(await readFile(path.join(outsideDir, "secret.txt"), "utf8")).toBe("outside secret");
  });
});

/** What a tree looks like on disk: type, permission bits, content hash (files) and mtime second, link target. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const rel of await namesUnder(dir)) {
    const abs = path.join(dir, rel);
    const info = await lstat(abs);
    const mode = (info.mode & 0o7777).toString(8);
    if (info.isSymbolicLink()) out[rel] = `symlink -> ${await readlink(abs)}`;
    else if (info.isDirectory()) out[rel] = `directory ${mode}`;
    else out[rel] = `file ${mode} ${sha256(await readFile(abs))} mtime ${Math.floor(info.mtimeMs / 1000)}`;
  }
  return out;
}

/** Names of staging directories anywhere under the workspace; extraction must never leave one. */
async function stagingLeftovers(): Promise<string[]> {
  return (await namesUnder(runnerd.root)).filter((name) => name.split("/").some((p) => p.startsWith(".sbx-")));
}

describe("archives", () => {
  it("round-trips a tree through GET and PUT archive: contents, modes and symlink targets", async () => {
    const blob = randomBytes(300 * 1024);
    await written("tar-src/readme.txt", "hello\n");
    await written("tar-src/bin/run.sh", "#!/bin/sh\necho hi\n", "0755");
    await written("tar-src/bin/private.key", "k", "0600");
    await written("tar-src/data/blob.bin", blob);
    await written("tar-src/nested/deep/er/leaf.txt", "leaf");
    await runnerd.json("POST", "/v1/files/mkdir", { path: "tar-src/empty" });
    await symlink("../readme.txt", onDisk("tar-src/nested/readme-link"));
    await symlink("deep/er", onDisk("tar-src/nested/dir-link"));

    const response = await runnerd.request("/v1/files/archive?path=tar-src");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/x-tar");
    const archive = new Uint8Array(await response.arrayBuffer());
    const names = await entryNamesOf(archive);
    expect(names).toContain("bin/run.sh");
    expect(names.every((name) => !name.startsWith("/") && !name.startsWith("tar-src"))).toBe(true);

    const extracted = await putArchive("tar-copy", archive);
    expect(extracted.status).toBe(200);
    const result = ArchiveExtractResponseSchema.parse(await extracted.json());
    expect(result).toMatchObject({ path: "tar-copy", entries: names.length });
    expect(result.bytes).toBe(blob.length + "hello\n".length + "#!/bin/sh\necho hi\n".length + 1 + "leaf".length);

    const source = await snapshot(onDisk("tar-src"));
    expect(Object.keys(source)).toEqual(
      expect.arrayContaining(["bin/run.sh", "data/blob.bin", "empty", "nested/readme-link", "nested/dir-link"]),
    );
    expect(source["bin/run.sh"]).toMatch(/^file 755 /);
    expect(source["nested/readme-link"]).toBe("symlink -> ../readme.txt");
    expect(await snapshot(onDisk("tar-copy"))).toEqual(source);
    expect(await stagingLeftovers()).toEqual([]);
  });

  it("archives a single file as one entry named after it", async () => {
    await written("tar-single/one.txt", "just me");
    const response = await runnerd.request("/v1/files/archive?path=tar-single/one.txt");
    expect(response.status).toBe(200);
    expect(await entryNamesOf(new Uint8Array(await response.arrayBuffer()))).toEqual(["one.txt"]);
  });

  it("extracts a gzipped tar", async () => {
    const blob = randomBytes(10_000);
    const archive = await tarOf([
      { header: { name: "g/", type: "directory", mode: 0o755 } },
      { header: { name: "g/a.txt", mode: 0o640 }, body: "gzipped a" },
      { header: { name: "g/blob.bin", mode: 0o644 }, body: blob },
      { header: { name: "g/l", type: "symlink", linkname: "a.txt" } },
      { header: { name: "g/x/run", mode: 0o755 }, body: "#!/bin/sh\n" },
    ]);
    const response = await putArchive("tar-gz", gzipSync(archive));
    expect(response.status).toBe(200);
    expect(ArchiveExtractResponseSchema.parse(await response.json())).toMatchObject({ path: "tar-gz", entries: 5 });
    expect(await readFile(onDisk("tar-gz/g/a.txt"), "utf8")).toBe("gzipped a");
    expect((await readFile(onDisk("tar-gz/g/blob.bin"))).equals(blob)).toBe(true);
    expect(await permissions(onDisk("tar-gz/g/a.txt"))).toBe(0o640);
    expect(await permissions(onDisk("tar-gz/g/x/run"))).toBe(0o755);
    expect(await readlink(onDisk("tar-gz/g/l"))).toBe("a.txt");
    expect(await stagingLeftovers()).toEqual([]);
  });

  it("merges into an existing directory, replacing files the archive carries and keeping the rest", async () => {
    await written("tar-merge/keep.txt", "kept");
    await written("tar-merge/replace.txt", "old");
    const archive = await tarOf([
      { header: { name: "replace.txt" }, body: "new" },
      { header: { name: "added.txt" }, body: "added" },
    ]);
    expect((await putArchive("tar-merge", archive)).status).toBe(200);
    expect(await readFile(onDisk("tar-merge/keep.txt"), "utf8")).toBe("kept");
    expect(await readFile(onDisk("tar-merge/replace.txt"), "utf8")).toBe("new");
    expect(await readFile(onDisk("tar-merge/added.txt"), "utf8")).toBe("added");
  });

  it("refuses a body that is not a tar with 400 VALIDATION_FAILED and leaves nothing", async () => {
    await mkdir(onDisk("tar-garbage"), { recursive: true });
    await expectError(await putArchive("tar-garbage", randomBytes(4096)), 400, "VALIDATION_FAILED");
    expect(await namesUnder(onDisk("tar-garbage"))).toEqual([]);
  });

  describe("hostile archives", () => {
    const evilName = `evil-${tag}`;
    /** An entry that is fine on its own; refusal must undo it too. */
    const harmless: ArchiveEntry = { header: { name: "ok.txt" }, body: "harmless" };
    const cases: Array<[string, () => ArchiveEntry[]]> = [
      ["a `../` entry", () => [harmless, { header: { name: `../${evilName}` }, body: "evil" }]],
      ["a deeper `a/../../` entry", () => [harmless, { header: { name: `a/../../${evilName}` }, body: "evil" }]],
      ["an absolute entry", () => [harmless, { header: { name: path.join(tmpdir(), evilName) }, body: "evil" }]],
      ["a symlink to /etc", () => [harmless, { header: { name: "etc", type: "symlink", linkname: "/etc" } }]],
      [
        "a relative symlink climbing out of the workspace",
        () => [harmless, { header: { name: "up", type: "symlink", linkname: "../../../.." } }],
      ],
      [
        "a file written through a symlink from the same archive",
        () => [
          harmless,
          { header: { name: "link", type: "symlink", linkname: "../../hostile-victim" } },
          { header: { name: "link/x" }, body: "through the link" },
        ],
      ],
      [
        "a hard link reached through a symlink from the same archive",
        () => [
          harmless,
          { header: { name: "l", type: "symlink", linkname: onDisk("hostile-outside-link") } },
          { header: { name: "h", type: "link", linkname: "l/secret.txt" } },
        ],
      ],
      [
        // q and p each resolve inside the workspace on paper; followed for real, p climbs to the temp directory.
        "a hard link through a chain of symlinks from the same archive",
        () => [
          harmless,
          { header: { name: "a/b/q", type: "symlink", linkname: ".." } },
          { header: { name: "a/b/p", type: "symlink", linkname: "q/../../../../.." } },
          { header: { name: "h", type: "link", linkname: `a/b/p/${path.basename(outsideDir)}/secret.txt` } },
        ],
      ],
      [
        "a chain of symlinks that only leads out when followed",
        () => [
          harmless,
          { header: { name: "a/b/q", type: "symlink", linkname: ".." } },
          { header: { name: "a/b/p", type: "symlink", linkname: "q/../../../../.." } },
        ],
      ],
      [
        "a symlink that leads out through a link already in the workspace",
        () => [harmless, { header: { name: "via", type: "symlink", linkname: "../../hostile-outside-link/x" } }],
      ],
      [
        "a hard link to a path outside the archive",
        () => [harmless, { header: { name: "h", type: "link", linkname: "../../../etc/passwd" } }],
      ],
      [
        "a character-device entry",
        () => [harmless, { header: { name: "null", type: "character-device", devmajor: 1, devminor: 3 } }],
      ],
      ["a block-device entry", () => [harmless, { header: { name: "sda", type: "block-device", devmajor: 8 } }]],
      ["a fifo entry", () => [harmless, { header: { name: "pipe", type: "fifo" } }]],
    ];

    beforeAll(async () => {
      await mkdir(onDisk("hostile-victim"), { recursive: true });
      await symlink(outsideDir, onDisk("hostile-outside-link"));
    });

    it.each(cases)("refuses %s with 422 ARCHIVE_REFUSED and leaves nothing behind", async (name, entries) => {
      const target = `hostile/${name.replace(/[^a-z0-9]+/gi, "-")}`;
      await mkdir(onDisk(target), { recursive: true });
      const outsideBefore = await namesUnder(outsideDir);
      await expectError(await putArchive(target, await tarOf(entries())), 422, "ARCHIVE_REFUSED");
      expect(await namesUnder(onDisk(target))).toEqual([]);
      expect(await namesUnder(onDisk("hostile-victim"))).toEqual([]);
      expect(await namesUnder(outsideDir)).toEqual(outsideBefore);
      expect(existsSync(onDisk(evilName))).toBe(false);
      expect(existsSync(onDisk(`hostile/${evilName}`))).toBe(false);
      expect(existsSync(path.join(tmpdir(), evilName))).toBe(false);
      expect(await stagingLeftovers()).toEqual([]);
    });

    it("removes the directory it created for a refused archive", async () => {
      const archive = await tarOf([harmless, { header: { name: `../${evilName}` }, body: "evil" }]);
      await expectError(await putArchive("hostile-new/deeper", archive), 422, "ARCHIVE_REFUSED");
      expect(existsSync(onDisk("hostile-new"))).toBe(false);
    });

    it("refuses a gzipped hostile archive the same way", async () => {
      await mkdir(onDisk("hostile/gz"), { recursive: true });
      const archive = await tarOf([harmless, { header: { name: `../${evilName}` }, body: "evil" }]);
      await expectError(await putArchive("hostile/gz", gzipSync(archive)), 422, "ARCHIVE_REFUSED");
      expect(await namesUnder(onDisk("hostile/gz"))).toEqual([]);
      expect(existsSync(onDisk(`hostile/${evilName}`))).toBe(false);
      expect(await stagingLeftovers()).toEqual([]);
    });
  });
});

function portOf(server: Server): number {
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("server is not listening on TCP");
  return address.port;
}

describe("fetch", () => {
  let upstream: Server;
  let upstreamUrl: string;
  const blob = randomBytes(200 * 1024);

  beforeAll(async () => {
    upstream = createServer((request, response) => {
      // runnerd hangs up on purpose when a download breaks a limit; that is not a test failure.
      response.on("error", () => undefined);
      switch (request.url) {
        case "/blob":
          response.writeHead(200, { "content-length": blob.length }).end(blob);
          return;
        case "/declared-big":
          response.writeHead(200, { "content-length": 64 * 1024 }).end(Buffer.alloc(64 * 1024));
          return;
        case "/chunked-big": {
          // No Content-Length: the cap can only be found by counting bytes as they arrive.
          response.writeHead(200, { "content-type": "application/octet-stream" });
          let sent = 0;
          const more = () => {
            if (response.destroyed) return;
            if (sent >= 64 * 1024) {
              response.end();
              return;
            }
            sent += 1024;
            response.write(Buffer.alloc(1024, 7), () => setImmediate(more));
          };
          more();
          return;
        }
        default:
          response.writeHead(404, { "content-type": "text/plain" }).end("no such thing");
      }
    });
    await new Promise<void>((resolve) => upstream.listen(0, "127.0.0.1", resolve));
    upstreamUrl = `http://127.0.0.1:${portOf(upstream)}`;
    await mkdir(onDisk("downloads"), { recursive: true });
  });
  afterAll(async () => {
    upstream?.closeAllConnections();
    await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
  });

  const fetchInto = (body: unknown) =>
    runnerd.request("/v1/files/fetch", { method: "POST", body: JSON.stringify(body) });
  const downloads = () => namesUnder(onDisk("downloads"));

  it("downloads a file, verifying its sha256 and setting its mode", async () => {
    const response = await fetchInto({
      url: `${upstreamUrl}/blob`,
      path: "downloads/blob.bin",
      sha256: sha256(blob).toUpperCase(),
      mode: "0755",
    });
    expect(response.status).toBe(200);
    expect(FetchResponseSchema.parse(await response.json())).toEqual({
      path: "downloads/blob.bin",
      size: blob.length,
      sha256: sha256(blob),
    });
    expect((await readFile(onDisk("downloads/blob.bin"))).equals(blob)).toBe(true);
    expect(await permissions(onDisk("downloads/blob.bin"))).toBe(0o755);
    expect(await downloads()).toEqual(["blob.bin"]);
  });

  it("refuses a download whose Content-Length exceeds maxBytes with 413 and writes nothing", async () => {
    const response = await fetchInto({
      url: `${upstreamUrl}/declared-big`,
      path: "downloads/declared.bin",
      maxBytes: 4096,
    });
    await expectError(response, 413, "FILE_TOO_LARGE");
    expect(await downloads()).toEqual(["blob.bin"]);
  });

  it("cuts off a chunked download without Content-Length at maxBytes with 413 and writes nothing", async () => {
    const probe = await fetch(`${upstreamUrl}/chunked-big`);
    expect(probe.headers.get("content-length")).toBeNull();
    await probe.body?.cancel();

    const response = await fetchInto({
      url: `${upstreamUrl}/chunked-big`,
      path: "downloads/chunked.bin",
      maxBytes: 4096,
    });
    await expectError(response, 413, "FILE_TOO_LARGE");
    expect(await downloads()).toEqual(["blob.bin"]);
  });

  it("refuses content that does not match sha256 with 422 CHECKSUM_MISMATCH and writes nothing", async () => {
    const response = await fetchInto({
      url: `${upstreamUrl}/blob`,
      path: "downloads/tampered.bin",
      sha256: "0".repeat(64),
    });
    await expectError(response, 422, "CHECKSUM_MISMATCH");
    expect(await downloads()).toEqual(["blob.bin"]);
  });

  it("keeps the previous file when a replacing download fails", async () => {
    const response = await fetchInto({
      url: `${upstreamUrl}/blob`,
      path: "downloads/blob.bin",
      sha256: "0".repeat(64),
    });
    await expectError(response, 422, "CHECKSUM_MISMATCH");
    expect((await readFile(onDisk("downloads/blob.bin"))).equals(blob)).toBe(true);
  });

  it("answers 502 FETCH_FAILED when upstream answers 404", async () => {
    const response = await fetchInto({ url: `${upstreamUrl}/missing`, path: "downloads/new/dir/missing.bin" });
    const { error } = ErrorEnvelopeSchema.parse(await response.json());
    expect(response.status).toBe(502);
    expect(error).toMatchObject({ code: "FETCH_FAILED", details: { status: 404 } });
    // Not even the directories made for it remain.
    expect(await downloads()).toEqual(["blob.bin"]);
  });

  it("answers 502 FETCH_FAILED when the connection is refused", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = portOf(closed);
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const response = await fetchInto({ url: `http://127.0.0.1:${port}/x`, path: "downloads/refused.bin" });
    await expectError(response, 502, "FETCH_FAILED");
    expect(await downloads()).toEqual(["blob.bin"]);
  });
});

describe("with a 1 KiB file limit", () => {
  let small: RunnerdHandle;

  beforeAll(async () => {
    small = await startRunnerd({ env: { RUNNERD_MAX_FILE_BYTES: "1024" } });
  });
  afterAll(async () => {
    await small?.stop();
  });

  const putSmall = (rel: string, body: Uint8Array | ReadableStream<Uint8Array>) =>
    small.request(`/v1/files/content?path=${q(rel)}`, { method: "PUT", body, duplex: "half" });

  it("accepts a file of exactly the limit", async () => {
    const response = await putSmall("exact.bin", randomBytes(1024));
    expect(response.status).toBe(200);
    expect(FileWriteResponseSchema.parse(await response.json()).size).toBe(1024);
  });

  it("refuses a larger upload with a Content-Length with 413 FILE_TOO_LARGE and writes nothing", async () => {
    const response = await putSmall("declared/big.bin", randomBytes(4096));
    await expectError(response, 413, "FILE_TOO_LARGE");
    expect(existsSync(path.join(small.root, "declared/big.bin"))).toBe(false);
  });

  it("refuses an archive whose content exceeds the limit with 413 FILE_TOO_LARGE and extracts nothing", async () => {
    await mkdir(path.join(small.root, "unpacked"), { recursive: true });
    const archive = await tarOf([
      { header: { name: "a.bin" }, body: randomBytes(800) },
      { header: { name: "b.bin" }, body: randomBytes(800) },
    ]);
    const response = await small.request("/v1/files/archive?path=unpacked", { method: "PUT", body: archive });
    await expectError(response, 413, "FILE_TOO_LARGE");
    expect(await namesUnder(path.join(small.root, "unpacked"))).toEqual([]);
  });

  it("refuses a larger chunked upload with 413 FILE_TOO_LARGE and leaves no temp file", async () => {
    await mkdir(path.join(small.root, "chunked"), { recursive: true });
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 8; i++) controller.enqueue(randomBytes(512));
        controller.close();
      },
    });
    await expectError(await putSmall("chunked/big.bin", body), 413, "FILE_TOO_LARGE");
    expect(await namesUnder(path.join(small.root, "chunked"))).toEqual([]);
  });
});
