import { existsSync } from "node:fs";
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ApiError } from "@sbx/protocol";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isWithin, WorkspaceRoot } from "./workspace-root.js";

let scratch: string;
/** The workspace root on disk (a real directory). */
let rootDir: string;
/** A directory beside the root that no workspace path may reach. */
let outsideDir: string;

beforeEach(async () => {
  scratch = await realpath(await mkdtemp(path.join(tmpdir(), "workspace-root-test-")));
  rootDir = path.join(scratch, "root");
  outsideDir = path.join(scratch, "outside");
  await mkdir(rootDir);
  await mkdir(outsideDir);
  await writeFile(path.join(outsideDir, "secret.txt"), "secret");
});
afterEach(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** The error code `action` throws, or undefined when it returns. */
function thrownCode(action: () => unknown): string | undefined {
  try {
    action();
  } catch (error) {
    if (error instanceof ApiError) return error.code;
    throw error;
  }
  return undefined;
}

describe("WorkspaceRoot.lexical", () => {
  it.each([
    ["a parent reference", "../x"],
    ["a parent reference after a component", "a/../../x"],
    ["an absolute path elsewhere", "/etc/passwd"],
    ["a sibling sharing the root's name as prefix", "../root-sibling/x"],
  ])("refuses %s with PATH_OUTSIDE_ROOT", async (_name, input) => {
    const root = await WorkspaceRoot.open(rootDir);
    expect(thrownCode(() => root.lexical(input))).toBe("PATH_OUTSIDE_ROOT");
  });

  it("refuses an absolute path that shares the root's name as a prefix", async () => {
    const root = await WorkspaceRoot.open(rootDir);
    expect(thrownCode(() => root.lexical(`${rootDir}-sibling/x`))).toBe("PATH_OUTSIDE_ROOT");
  });

  it.each([
    ["empty", ""],
    ["containing NUL", "a\0b"],
  ])("refuses a path that is %s with INVALID_PATH", async (_name, input) => {
    const root = await WorkspaceRoot.open(rootDir);
    expect(thrownCode(() => root.lexical(input))).toBe("INVALID_PATH");
  });

  it("resolves relative paths, normalising `.` and inner `..`, without touching the disk", async () => {
    const root = await WorkspaceRoot.open(rootDir);
    expect(root.lexical("a/./b/../c")).toEqual({ abs: path.join(rootDir, "a", "c"), rel: "a/c" });
    expect(root.lexical("missing/deeper/file")).toEqual({
      abs: path.join(rootDir, "missing", "deeper", "file"),
      rel: "missing/deeper/file",
    });
  });

  it("calls the root itself `.`", async () => {
    const root = await WorkspaceRoot.open(rootDir);
    expect(root.lexical(".")).toEqual({ abs: rootDir, rel: "." });
    expect(root.lexical("a/..")).toEqual({ abs: rootDir, rel: "." });
    expect(root.lexical(rootDir)).toEqual({ abs: rootDir, rel: "." });
  });

  it("accepts an absolute path inside the root and reports it relative", async () => {
    const root = await WorkspaceRoot.open(rootDir);
    expect(root.lexical(path.join(rootDir, "a", "b.txt"))).toEqual({
      abs: path.join(rootDir, "a", "b.txt"),
      rel: "a/b.txt",
    });
  });
});

describe("WorkspaceRoot.existing", () => {
  it("accepts an existing file and the root itself", async () => {
    await writeFile(path.join(rootDir, "f.txt"), "x");
    const root = await WorkspaceRoot.open(rootDir);
    await expect(root.existing("f.txt", { follow: true })).resolves.toEqual({
      abs: path.join(rootDir, "f.txt"),
      rel: "f.txt",
    });
    await expect(root.existing(".", { follow: false })).resolves.toEqual({ abs: rootDir, rel: "." });
  });

  it("reports a missing path as FILE_NOT_FOUND when following it", async () => {
    const root = await WorkspaceRoot.open(rootDir);
    await expect(root.existing("nope/deeper", { follow: true })).rejects.toMatchObject({ code: "FILE_NOT_FOUND" });
  });

  it("refuses to follow a symlink that leads out of the root", async () => {
    await symlink(outsideDir, path.join(rootDir, "link"));
    const root = await WorkspaceRoot.open(rootDir);
    await expect(root.existing("link", { follow: true })).rejects.toMatchObject({ code: "PATH_OUTSIDE_ROOT" });
    await expect(root.existing("link/secret.txt", { follow: true })).rejects.toMatchObject({
      code: "PATH_OUTSIDE_ROOT",
    });
  });

  it("without follow, accepts the escaping link itself but nothing beneath it", async () => {
    await symlink(outsideDir, path.join(rootDir, "link"));
    const root = await WorkspaceRoot.open(rootDir);
    await expect(root.existing("link", { follow: false })).resolves.toMatchObject({ rel: "link" });
    await expect(root.existing("link/secret.txt", { follow: false })).rejects.toMatchObject({
      code: "PATH_OUTSIDE_ROOT",
    });
  });

  it("follows a symlink that stays inside the root", async () => {
    await mkdir(path.join(rootDir, "dir"));
    await writeFile(path.join(rootDir, "dir", "f.txt"), "x");
    await symlink("dir", path.join(rootDir, "inner-link"));
    const root = await WorkspaceRoot.open(rootDir);
    await expect(root.existing("inner-link/f.txt", { follow: true })).resolves.toMatchObject({
      rel: "inner-link/f.txt",
    });
  });

  it("refuses a file-level symlink to a file outside the root", async () => {
    await symlink(path.join(outsideDir, "secret.txt"), path.join(rootDir, "secret-link"));
    const root = await WorkspaceRoot.open(rootDir);
    await expect(root.existing("secret-link", { follow: true })).rejects.toMatchObject({
      code: "PATH_OUTSIDE_ROOT",
    });
  });
});

describe("WorkspaceRoot.forCreate", () => {
  it("creates missing parents when asked to", async () => {
    const root = await WorkspaceRoot.open(rootDir);
    const p = await root.forCreate("a/b/c.txt", { makeParents: true });
    expect(p).toEqual({
      abs: path.join(rootDir, "a", "b", "c.txt"),
      rel: "a/b/c.txt",
      createdFrom: path.join(rootDir, "a"),
    });
    expect(existsSync(path.join(rootDir, "a", "b"))).toBe(true);
    expect(existsSync(p.abs)).toBe(false);
  });

  it("removes the parents it created when the operation on the path fails", async () => {
    const root = await WorkspaceRoot.open(rootDir);
    await mkdir(path.join(rootDir, "kept"));
    await expect(
      root.create("kept/new/deeper/file.txt", async () => {
        throw new Error("refused");
      }),
    ).rejects.toThrow("refused");
    expect(existsSync(path.join(rootDir, "kept"))).toBe(true);
    expect(existsSync(path.join(rootDir, "kept", "new"))).toBe(false);
  });

  it("without makeParents, reports a missing parent as FILE_NOT_FOUND and creates nothing", async () => {
    const root = await WorkspaceRoot.open(rootDir);
    await expect(root.forCreate("a/b.txt", { makeParents: false })).rejects.toMatchObject({ code: "FILE_NOT_FOUND" });
    expect(existsSync(path.join(rootDir, "a"))).toBe(false);
  });

  it("refuses the root itself", async () => {
    const root = await WorkspaceRoot.open(rootDir);
    await expect(root.forCreate(".", { makeParents: true })).rejects.toMatchObject({ code: "INVALID_PATH" });
  });

  it("refuses a lexical escape before creating anything", async () => {
    const root = await WorkspaceRoot.open(rootDir);
    await expect(root.forCreate("../made/x", { makeParents: true })).rejects.toMatchObject({
      code: "PATH_OUTSIDE_ROOT",
    });
    expect(existsSync(path.join(scratch, "made"))).toBe(false);
  });

  it("refuses to create through a symlink that leads out, without creating directories outside", async () => {
    await symlink(outsideDir, path.join(rootDir, "link"));
    const root = await WorkspaceRoot.open(rootDir);
    await expect(root.forCreate("link/new.txt", { makeParents: true })).rejects.toMatchObject({
      code: "PATH_OUTSIDE_ROOT",
    });
    await expect(root.forCreate("link/sub/deeper/new.txt", { makeParents: true })).rejects.toMatchObject({
      code: "PATH_OUTSIDE_ROOT",
    });
    await expect(root.forCreate("link/new.txt", { makeParents: false })).rejects.toMatchObject({
      code: "PATH_OUTSIDE_ROOT",
    });
    expect(existsSync(path.join(outsideDir, "sub"))).toBe(false);
  });

  it("reports a dangling link in the place of a parent as NOT_A_DIRECTORY, creating nothing where it points", async () => {
    const missing = path.join(outsideDir, "not-yet");
    await symlink(missing, path.join(rootDir, "dangling"));
    const root = await WorkspaceRoot.open(rootDir);
    await expect(root.forCreate("dangling/x", { makeParents: true })).rejects.toMatchObject({
      code: "NOT_A_DIRECTORY",
    });
    await expect(root.forCreate("dangling/sub/x", { makeParents: true })).rejects.toMatchObject({
      code: "NOT_A_DIRECTORY",
    });
    expect(existsSync(missing)).toBe(false);
  });

  it("accepts replacing an escaping link itself, since only its parent must be inside", async () => {
    await symlink(outsideDir, path.join(rootDir, "link"));
    const root = await WorkspaceRoot.open(rootDir);
    await expect(root.forCreate("link", { makeParents: true })).resolves.toMatchObject({ rel: "link" });
  });

  it("reports a file in the place of a parent as NOT_A_DIRECTORY", async () => {
    await writeFile(path.join(rootDir, "file"), "x");
    const root = await WorkspaceRoot.open(rootDir);
    await expect(root.forCreate("file/x", { makeParents: true })).rejects.toMatchObject({ code: "NOT_A_DIRECTORY" });
    await expect(root.forCreate("file/x/y", { makeParents: true })).rejects.toMatchObject({
      code: "NOT_A_DIRECTORY",
    });
  });
});

describe("WorkspaceRoot opened through a symlink", () => {
  it("works under the real path and accepts absolute paths in either spelling", async () => {
    const configured = path.join(scratch, "root-link");
    await symlink(rootDir, configured);
    await writeFile(path.join(rootDir, "f.txt"), "x");
    const root = await WorkspaceRoot.open(configured);
    expect(root.configured).toBe(configured);
    expect(root.real).toBe(rootDir);

    expect(root.lexical("f.txt")).toEqual({ abs: path.join(rootDir, "f.txt"), rel: "f.txt" });
    expect(root.lexical(path.join(configured, "f.txt"))).toEqual({ abs: path.join(rootDir, "f.txt"), rel: "f.txt" });
    expect(root.lexical(path.join(rootDir, "f.txt"))).toEqual({ abs: path.join(rootDir, "f.txt"), rel: "f.txt" });
    expect(root.lexical(configured)).toEqual({ abs: rootDir, rel: "." });

    await expect(root.existing("f.txt", { follow: true })).resolves.toMatchObject({ rel: "f.txt" });
    await expect(root.existing(".", { follow: true })).resolves.toEqual({ abs: rootDir, rel: "." });
    await expect(root.forCreate("new/dir/file", { makeParents: true })).resolves.toMatchObject({
      rel: "new/dir/file",
    });
    expect(existsSync(path.join(rootDir, "new", "dir"))).toBe(true);
  });

  it("still refuses escapes from the configured spelling", async () => {
    const configured = path.join(scratch, "root-link");
    await symlink(rootDir, configured);
    const root = await WorkspaceRoot.open(configured);
    expect(thrownCode(() => root.lexical(path.join(configured, "..", "outside", "secret.txt")))).toBe(
      "PATH_OUTSIDE_ROOT",
    );
    expect(thrownCode(() => root.lexical("../outside/secret.txt"))).toBe("PATH_OUTSIDE_ROOT");
  });

  it("creates a missing configured root", async () => {
    const missing = path.join(scratch, "fresh", "root");
    const root = await WorkspaceRoot.open(missing);
    expect(root.real).toBe(missing);
    expect(existsSync(missing)).toBe(true);
  });
});

describe("isWithin", () => {
  it("accepts the base and its descendants, not siblings that share a prefix", () => {
    expect(isWithin("/w", "/w")).toBe(true);
    expect(isWithin("/w", "/w/a/b")).toBe(true);
    expect(isWithin("/w", "/wx")).toBe(false);
    expect(isWithin("/w", "/")).toBe(false);
    expect(isWithin("/", "/anything")).toBe(true);
  });
});
