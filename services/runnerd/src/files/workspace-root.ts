import { mkdir, realpath, rmdir } from "node:fs/promises";
import path from "node:path";
import { ApiError } from "@sbx/protocol";
import { isErrno } from "../exec/process-tree.js";

/**
 * runnerd keeps its state (env, finished execs) in this directory at
 * the workspace root: the file API neither shows nor touches it.
 */
export const RESERVED_DIR = ".sbx";

/** A path inside the workspace: `abs` is under the root's real path, `rel` is what callers see. */
export interface WorkspacePath {
  abs: string;
  /** `/`-separated, relative to the root; the root itself is `.`. */
  rel: string;
}

/**
 * Confines file operations to the workspace root. Every path is first
 * resolved lexically (no `..` or absolute escape), then checked on the real
 * path of what exists, so a symlink inside the workspace cannot lead out.
 */
export class WorkspaceRoot {
  private constructor(
    /** The root as configured (may itself be a symlink). */
    readonly configured: string,
    /** The root's real path; every operation works under it. */
    readonly real: string,
  ) {}

  /** Opens the root, creating it if missing. */
  static async open(root: string): Promise<WorkspaceRoot> {
    const configured = path.resolve(root);
    await mkdir(configured, { recursive: true });
    return new WorkspaceRoot(configured, await realpath(configured));
  }

  /** Resolves `input` without touching the file system; refuses anything outside the root. */
  lexical(input: string): WorkspacePath {
    if (input === "" || input.includes("\0")) throw new ApiError("INVALID_PATH", "path must be non-empty, without NUL");
    for (const base of [this.configured, this.real]) {
      const abs = path.resolve(base, input);
      if (isWithin(base, abs)) {
        const rel = path.relative(base, abs);
        if (rel.split(path.sep)[0] === RESERVED_DIR) {
          throw new ApiError("PERMISSION_DENIED", `${RESERVED_DIR} is runnerd's own directory`);
        }
        return { abs: rel === "" ? this.real : path.join(this.real, rel), rel: rel === "" ? "." : rel };
      }
      if (!path.isAbsolute(input)) break;
    }
    throw new ApiError("PATH_OUTSIDE_ROOT", `path ${JSON.stringify(input)} is outside the workspace`);
  }

  /**
   * An existing path. With `follow`, the target's own real path must be inside
   * the root (reads, listings); without, only its parent's (the final
   * component is acted on itself: delete, move, lstat).
   */
  async existing(input: string, options: { follow: boolean }): Promise<WorkspacePath> {
    const p = this.lexical(input);
    const probe = options.follow || p.rel === "." ? p.abs : path.dirname(p.abs);
    await this.checkReal(probe, p.rel);
    return p;
  }

  /**
   * A path about to be created or replaced. The deepest existing ancestor must
   * resolve inside the root; with `makeParents`, missing directories are
   * created and the parent is checked again afterwards. `createdFrom` names
   * the first directory this call created, so a failed operation can undo it.
   */
  async forCreate(input: string, options: { makeParents: boolean }): Promise<WorkspacePath & { createdFrom?: string }> {
    const p = this.lexical(input);
    if (p.rel === ".") throw new ApiError("INVALID_PATH", "the workspace root itself cannot be replaced");
    const parent = path.dirname(p.abs);
    if (!options.makeParents) {
      await this.checkReal(parent, p.rel);
      return p;
    }
    await this.checkReal(await this.deepestExisting(parent), p.rel);
    const createdFrom = await mkdir(parent, { recursive: true }).catch((error: unknown) => {
      // ENOENT: a dangling symbolic link stands where a parent directory should be.
      if (isErrno(error, "EEXIST") || isErrno(error, "ENOTDIR") || isErrno(error, "ENOENT")) {
        throw new ApiError("NOT_A_DIRECTORY", `a parent of ${p.rel} is not a directory`);
      }
      throw error;
    });
    const created = createdFrom === undefined ? p : { ...p, createdFrom };
    try {
      await this.checkReal(parent, p.rel);
    } catch (error) {
      await this.undoParents(created);
      throw error;
    }
    return created;
  }

  /**
   * Runs `op` on a path to be created, creating its parents first; when `op`
   * fails, the directories created for it are removed again (if still empty),
   * so a refused or failed write leaves nothing behind.
   */
  async create<T>(input: string, op: (target: WorkspacePath) => Promise<T>): Promise<T> {
    const target = await this.forCreate(input, { makeParents: true });
    try {
      return await op(target);
    } catch (error) {
      await this.undoParents(target);
      throw error;
    }
  }

  /** Removes the directories `forCreate` made, innermost first, stopping at one that is not empty. */
  async undoParents(target: { abs: string; createdFrom?: string }): Promise<void> {
    if (target.createdFrom === undefined) return;
    for (let dir = path.dirname(target.abs); isWithin(target.createdFrom, dir); dir = path.dirname(dir)) {
      try {
        await rmdir(dir);
      } catch (error) {
        if (isErrno(error, "ENOTEMPTY") || isErrno(error, "EEXIST") || isErrno(error, "ENOENT")) return;
        throw error;
      }
      if (dir === target.createdFrom) return;
    }
  }

  /** The `rel` form of an absolute path already known to be inside the root. */
  relative(abs: string): string {
    const rel = path.relative(this.real, abs);
    return rel === "" ? "." : rel;
  }

  private async checkReal(abs: string, rel: string): Promise<void> {
    let real: string;
    try {
      real = await realpath(abs);
    } catch (error) {
      if (isErrno(error, "ENOENT")) throw new ApiError("FILE_NOT_FOUND", `${rel}: no such file or directory`);
      if (isErrno(error, "ENOTDIR")) throw new ApiError("NOT_A_DIRECTORY", `a parent of ${rel} is not a directory`);
      if (isErrno(error, "ELOOP")) throw new ApiError("INVALID_PATH", `${rel}: too many levels of symbolic links`);
      throw error;
    }
    if (!isWithin(this.real, real)) {
      throw new ApiError("PATH_OUTSIDE_ROOT", `${rel} resolves outside the workspace (through a symbolic link)`);
    }
  }

  private async deepestExisting(abs: string): Promise<string> {
    let current = abs;
    for (;;) {
      try {
        await realpath(current);
        return current;
      } catch (error) {
        if (isErrno(error, "ENOTDIR")) throw new ApiError("NOT_A_DIRECTORY", "a parent of the path is not a directory");
        if (!isErrno(error, "ENOENT")) throw error;
        const up = path.dirname(current);
        if (up === current) return current;
        current = up;
      }
    }
  }
}

export function isWithin(base: string, candidate: string): boolean {
  return candidate === base || candidate.startsWith(base.endsWith("/") ? base : `${base}/`);
}
