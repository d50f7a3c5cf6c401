import { EXEC_MARKER_VAR, isReservedEnvName } from "@sbx/protocol";

/** Variables from runnerd's own environment that execs inherit (the image's PATH, locale, time zone). */
const INHERITED = ["PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ"] as const;
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export interface Identity {
  username: string;
  homedir: string;
  shell: string | null;
}

/**
 * The clean environment every exec starts from: never runnerd's own
 * environment wholesale, so its configuration and anything else it was
 * given stay out of user processes.
 */
export function baseEnvironment(
  own: NodeJS.ProcessEnv,
  identity: Identity,
  passthrough: readonly string[],
): Record<string, string> {
  const env: Record<string, string> = {
    PATH: DEFAULT_PATH,
    LANG: "C.UTF-8",
    HOME: identity.homedir,
    USER: identity.username,
    LOGNAME: identity.username,
    SHELL: identity.shell ?? "/bin/sh",
  };
  for (const name of [...INHERITED, ...passthrough]) {
    const value = own[name];
    if (value !== undefined && !isReservedEnvName(name)) env[name] = value;
  }
  return env;
}

export interface PatchResult {
  names: string[];
  denied: string[];
}

/** Session-wide variables set through the API; applied to execs started afterwards. */
export class EnvStore {
  private readonly values = new Map<string, string>();

  /** `onChange` is told the whole store after every patch (runnerd persists it). */
  constructor(
    initial: Readonly<Record<string, string>> = {},
    private readonly onChange: (values: Record<string, string>) => void = () => {},
  ) {
    for (const [name, value] of Object.entries(initial)) if (!isReservedEnvName(name)) this.values.set(name, value);
  }

  names(): string[] {
    return [...this.values.keys()].sort();
  }

  patch(set: Readonly<Record<string, string>>, unset: readonly string[]): PatchResult {
    const denied = new Set<string>();
    for (const [name, value] of Object.entries(set)) {
      if (isReservedEnvName(name)) denied.add(name);
      else this.values.set(name, value);
    }
    for (const name of unset) {
      if (isReservedEnvName(name)) denied.add(name);
      else this.values.delete(name);
    }
    this.onChange(Object.fromEntries(this.values));
    return { names: this.names(), denied: [...denied].sort() };
  }

  /** base, then the store, then the exec's own overlay, then what runnerd sets per exec. */
  execEnvironment(
    base: Readonly<Record<string, string>>,
    overlay: Readonly<Record<string, string>>,
    perExec: { cwd: string; marker: string },
  ): Record<string, string> {
    return {
      ...base,
      ...Object.fromEntries(this.values),
      ...overlay,
      PWD: perExec.cwd,
      [EXEC_MARKER_VAR]: perExec.marker,
    };
  }
}
