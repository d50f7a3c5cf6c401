import {
  ApiError,
  type GatewayGrant,
  GRANT_HEADERS,
  grantLookupSignature,
  MAX_CLOCK_SKEW_MS,
  SessionIdSchema,
  sameSecret,
} from "@sbx/protocol";
import { Hono } from "hono";
import type { KnownSession, SessionRegistry } from "../sessions/session-registry.js";

/** Internal paths: not the platform's API, authenticated by their own secret. */
export const INTERNAL_PREFIX = "/internal/v1/";

/**
 * What the gateway asks the spawner: a session's grant (its state, its address, its egress
 * policy), signed with the secret the two share. Any replica answers from the session's platform
 * objects (through this replica's registry), so any gateway replica can ask any spawner replica.
 */
export function internalRoutes(registry: SessionRegistry, secret: string | undefined, now: () => number): Hono {
  const app = new Hono();
  app.get(`${INTERNAL_PREFIX}sessions/:id/grant`, async (c) => {
    const id = c.req.param("id");
    const timestamp = c.req.header(GRANT_HEADERS.timestamp) ?? "";
    const signature = c.req.header(GRANT_HEADERS.signature) ?? "";
    const skew = Math.abs(Number(timestamp) - now());
    if (
      secret === undefined ||
      !/^\d{1,16}$/.test(timestamp) ||
      skew > MAX_CLOCK_SKEW_MS ||
      !sameSecret(grantLookupSignature(secret, id, timestamp), signature)
    ) {
      throw new ApiError("UNAUTHORIZED", "grant lookups are the gateway's, signed with the shared secret");
    }
    if (!SessionIdSchema.safeParse(id).success) throw new ApiError("SESSION_NOT_FOUND", "no such session");
    const known = registry.cached(id) ?? (await registry.refresh(id));
    if (!known) throw new ApiError("SESSION_NOT_FOUND", `no session ${id}`);
    return c.json(grantOf(known));
  });
  return app;
}

function grantOf(known: KnownSession): GatewayGrant {
  const { phase } = known.state;
  return {
    sessionId: known.record.id,
    state: phase === "running" ? "running" : phase === "stopped" ? "stopped" : "other",
    address: known.address ?? null,
    egress: known.record.network,
  };
}
