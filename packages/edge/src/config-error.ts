/** An invalid environment variable: the message names it (never its value). */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Loads a service's configuration, or stops the process with the reason (exit code 2). */
export function loadConfigOrExit<T>(service: string, load: () => T): T {
  try {
    return load();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${service}: ${error.message}\n`);
    process.exit(2);
  }
}
