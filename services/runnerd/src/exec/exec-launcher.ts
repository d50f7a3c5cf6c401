import { accessSync, constants, statSync } from "node:fs";
import path from "node:path";
import type { ExecError } from "@sbx/protocol";

/**
 * Every exec starts through a few lines of /bin/sh that, before the
 * command runs, (1) set the RLIMIT_LOCKS limit (`ulimit -w`, unused by the
 * kernel since 2.4) to the exec's number and (2) raise the OOM score to the
 * maximum, then `exec` the command. Both are inherited by every process the
 * command ever starts, whatever it does with its environment, process group
 * or session, and neither can be undone without deliberately lowering the
 * limit (a process can lower a hard limit but never raise it back):
 *
 * - cancel finds the exec's processes by the limit, even those that left
 *   with `setsid`, a double fork and `env -i` (see process-tree.ts);
 * - when the session runs out of memory, the kernel kills an exec's
 *   process, never runnerd.
 */
const LAUNCHER = 'ulimit -w "$1" 2>/dev/null; echo 1000 >/proc/self/oom_score_adj 2>/dev/null; shift; exec "$@"';

/** Exec marks start here: far above any lock limit a program would set for itself. */
export const LOCKS_MARK_BASE = 1_000_000_000;

/** The program runnerd spawns for an exec, and its arguments. */
export function launchCommand(mark: number, command: readonly [string, ...string[]]): [string, string[]] {
  return ["/bin/sh", ["-c", LAUNCHER, "sbx-exec", String(mark), ...command]];
}

/**
 * Resolves the command as `exec` in the launcher will (a name is looked up
 * in the exec's PATH, a path is taken relative to its cwd), so a command
 * that cannot run fails with a clear error instead of the shell's 127.
 * Undefined when it will run.
 */
export function commandProblem(file: string, cwd: string, envPath: string | undefined): ExecError | undefined {
  if (file.includes("/")) return executableProblem(path.resolve(cwd, file), file);
  for (const dir of (envPath ?? "/usr/local/bin:/usr/bin:/bin").split(":")) {
    if (dir === "") continue;
    if (executableProblem(path.resolve(cwd, dir, file), file) === undefined) return undefined;
  }
  return { code: "COMMAND_NOT_FOUND", message: `command not found: ${file}` };
}

function executableProblem(candidate: string, file: string): ExecError | undefined {
  try {
    if (statSync(candidate).isDirectory()) {
      return { code: "COMMAND_NOT_EXECUTABLE", message: `permission denied: ${file} is a directory` };
    }
    accessSync(candidate, constants.X_OK);
    return undefined;
  } catch (error) {
    const code = error instanceof Error && "code" in error ? error.code : undefined;
    if (code === "EACCES") return { code: "COMMAND_NOT_EXECUTABLE", message: `permission denied: ${file}` };
    return { code: "COMMAND_NOT_FOUND", message: `command not found: ${file}` };
  }
}
