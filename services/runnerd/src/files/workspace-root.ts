import { mkdir, realpath } from "node:fs/promises";
import path from "node:path";
import { ApiError } from "@sbx/protocol";
import { isErrno } from "../exec/process-tree.js";

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
   * created and the parent is checked again afterwards.
   */
  async forCreate(input: string, options: { makeParents: boolean }): Promise<WorkspacePath> {
    const p = this.lexical(input);
    if (p.rel === ".") throw new ApiError("INVALID_PATH", "the workspace root itself cannot be replaced");
    const parent = path.dirname(p.abs);
    if (options.makeParents) {
      await this.checkReal(await this.deepestExisting(parent), p.rel);
      await mkdir(parent, { recursive: true }).catch((error: unknown) => {
        if (isErrno(error, "EEXIST") || isErrno(error, "ENOTDIR")) {
          throw new ApiError("NOT_A_DIRECTORY", `a parent of ${p.rel} is not a directory`);
        }
        throw error;
      });
    }
    await this.checkReal(parent, p.rel);
    return p;
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
