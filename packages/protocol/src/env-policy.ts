/** The environment variable that marks every process of an exec (inherited by its descendants). */
export const EXEC_MARKER_VAR = "SBX_EXEC";

/**
 * Names a session's environment may not set. `RUNNERD_*` is runnerd's own
 * configuration; the marker is how runnerd finds an exec's processes; PWD and
 * OLDPWD are set per exec from its cwd; SHLVL and `_` are shell bookkeeping
 * that a fixed value would corrupt. The spawner refuses them at create, and
 * runnerd refuses them in PATCH /v1/env and exec overlays.
 */
export const RESERVED_ENV_PREFIXES: readonly string[] = ["RUNNERD_"];
export const RESERVED_ENV_NAMES: ReadonlySet<string> = new Set([EXEC_MARKER_VAR, "PWD", "OLDPWD", "SHLVL", "_"]);

export function isReservedEnvName(name: string): boolean {
  return RESERVED_ENV_NAMES.has(name) || RESERVED_ENV_PREFIXES.some((prefix) => name.startsWith(prefix));
}
