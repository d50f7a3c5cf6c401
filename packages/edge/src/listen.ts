import type { Server } from "node:http";
import type { Logger } from "./logger.js";

/**
 * Starts listening and logs the `listening` line (or `message`) with the
 * port actually bound (port 0 picks one), which tests and operators read.
 */
export function listen(
  server: Server,
  host: string,
  port: number,
  log: Logger,
  fields: Record<string, unknown>,
  message = "listening",
): void {
  server.listen(port, host, () => {
    const address = server.address();
    const bound = address !== null && typeof address === "object" ? address.port : port;
    log.info({ host, port: bound, ...fields }, message);
  });
}
