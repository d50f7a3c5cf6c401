import { ApiError, type GatewayGrant, sameSecret, sessionProxyCredential } from "@sbx/protocol";
import ipaddr from "ipaddr.js";
import type { GrantSource } from "../grants/grant-source.js";

/** A request the gateway serves: which session sent it, and what that session may do. */
export interface SessionCaller {
  sessionId: string;
  grant: GatewayGrant;
}

/**
 * Who is asking: the session named in the proxy credential (`Proxy-Authorization: Basic`, as
 * HTTP_PROXY's user and password send it), if the credential is that session's, the session
 * exists, and the request comes from the session's own address — a credential copied out of a
 * session is useless anywhere else, and once the session is gone.
 */
export async function authenticate(
  header: string | undefined,
  remoteAddress: string | undefined,
  secret: string,
  grants: GrantSource,
): Promise<SessionCaller> {
  const credentials = parseBasic(header);
  if (!credentials) throw unauthorized("this proxy needs the session's credential (HTTP_PROXY as the session has it)");
  const { user: sessionId, password } = credentials;
  if (
    !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(sessionId) ||
    !sameSecret(sessionProxyCredential(secret, sessionId), password)
  ) {
    throw unauthorized("the proxy credential is not valid");
  }
  const grant = await grants.of(sessionId);
  if (!grant) throw unauthorized("the session of this credential does not exist (any more)");
  if (grant.address === null || !sameAddress(grant.address, remoteAddress)) {
    throw unauthorized("this credential works only from its own session");
  }
  return { sessionId, grant };
}

function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  const match = header === undefined ? null : /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header.trim());
  if (!match?.[1]) return undefined;
  const decoded = Buffer.from(match[1], "base64").toString("utf8");
  const at = decoded.indexOf(":");
  if (at <= 0) return undefined;
  try {
    return { user: decodeURIComponent(decoded.slice(0, at)), password: decodeURIComponent(decoded.slice(at + 1)) };
  } catch {
    return undefined;
  }
}

function sameAddress(expected: string, actual: string | undefined): boolean {
  if (actual === undefined) return false;
  try {
    return ipaddr.process(expected).toString() === ipaddr.process(actual).toString();
  } catch {
    return false;
  }
}

function unauthorized(message: string): ApiError {
  return new ApiError("PROXY_AUTH_REQUIRED", message);
}
