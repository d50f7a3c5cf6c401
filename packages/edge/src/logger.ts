import pino, { type Logger } from "pino";

export type { Logger };

/**
 * JSON lines on stdout. Nothing secret is ever passed to the logger: no
 * environment values, no request bodies, no tokens; the redaction list is a
 * second line of defence for headers should a request object slip in.
 */
export function createLogger(service: string, level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ["*.headers.authorization", "headers.authorization", '*.headers["x-sandbox-signature"]', "*.env", "env"],
        censor: "[redacted]",
      },
    },
    destination,
  );
}
