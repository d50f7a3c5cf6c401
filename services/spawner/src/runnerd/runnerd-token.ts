import { createHmac } from "node:crypto";
import { sha256Hex } from "@sbx/protocol";

/**
 * A session's runnerd token, derived from the session id under the spawner's
 * secret: any replica can compute it, none has to store it. The container
 * is only ever given its sha256.
 */
export function runnerdToken(secret: string, sessionId: string): string {
  return createHmac("sha256", secret).update(`sbx-runnerd-token:v1:${sessionId}`).digest("hex");
}

export function runnerdTokenSha256(secret: string, sessionId: string): string {
  return sha256Hex(runnerdToken(secret, sessionId));
}
