import type { Clock, Logger } from "@sbx/edge";
import { type GatewayGrant, GatewayGrantSchema, GRANT_HEADERS, grantLookupSignature } from "@sbx/protocol";

/** The most a grant answer may weigh: it is a few hundred bytes. */
const MAX_GRANT_BYTES = 64 * 1024;
/** A lookup the spawner does not answer in this long counts as no grant (the request is refused). */
const LOOKUP_TIMEOUT_MS = 3000;

/**
 * What the spawner says a session may do, asked on demand and kept for `ttlMs`: any replica of
 * the gateway serves any session, a restart loses nothing, and a session deleted or stopped is
 * refused within `ttlMs` of it. Lookups of one session in flight at once are shared.
 */
export class GrantSource {
  private readonly cache = new Map<string, { grant: GatewayGrant | undefined; until: number }>();
  private readonly inFlight = new Map<string, Promise<GatewayGrant | undefined>>();

  constructor(
    private readonly spawnerUrl: string,
    private readonly secret: string,
    private readonly ttlMs: number,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  /** The session's grant; undefined when the spawner knows no such session (or cannot say). */
  async of(sessionId: string): Promise<GatewayGrant | undefined> {
    const now = this.clock.now();
    const cached = this.cache.get(sessionId);
    if (cached && cached.until > now) return cached.grant;
    const pending = this.inFlight.get(sessionId);
    if (pending) return pending;
    const lookup = this.lookUp(sessionId)
      .then((grant) => {
        if (this.cache.size > 10_000) this.cache.clear();
        this.cache.set(sessionId, { grant, until: this.clock.now() + this.ttlMs });
        return grant;
      })
      .finally(() => this.inFlight.delete(sessionId));
    this.inFlight.set(sessionId, lookup);
    return lookup;
  }

  private async lookUp(sessionId: string): Promise<GatewayGrant | undefined> {
    const timestamp = String(this.clock.now());
    let response: Response;
    try {
      response = await fetch(`${this.spawnerUrl}/internal/v1/sessions/${encodeURIComponent(sessionId)}/grant`, {
        headers: {
          [GRANT_HEADERS.timestamp]: timestamp,
          [GRANT_HEADERS.signature]: grantLookupSignature(this.secret, sessionId, timestamp),
        },
        signal: AbortSignal.timeout(LOOKUP_TIMEOUT_MS),
      });
    } catch (error) {
      this.log.warn({ sessionId, err: error }, "the spawner did not answer a grant lookup");
      return undefined;
    }
    const text = await readBounded(response).catch(() => undefined);
    if (response.status === 404) return undefined;
    if (!response.ok || text === undefined) {
      this.log.warn({ sessionId, status: response.status }, "the spawner refused a grant lookup");
      return undefined;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      this.log.warn({ sessionId }, "the spawner answered a grant lookup with something not JSON");
      return undefined;
    }
    const grant = GatewayGrantSchema.safeParse(parsed);
    if (!grant.success || grant.data.sessionId !== sessionId) {
      this.log.warn({ sessionId }, "the spawner answered a grant lookup with an unexpected shape");
      return undefined;
    }
    return grant.data;
  }
}

/** The body as text, or undefined past MAX_GRANT_BYTES. */
async function readBounded(response: Response): Promise<string | undefined> {
  const reader = response.body?.getReader();
  if (!reader) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_GRANT_BYTES) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}
