import type { Logger } from "@sbx/edge";
import { ApiError } from "@sbx/protocol";
import { type WriteResult, writeAtomically } from "./atomic-write.js";
import { onPath } from "./fs-errors.js";
import type { WorkspaceRoot } from "./workspace-root.js";

export interface FetchOptions {
  url: string;
  path: string;
  maxBytes?: number | undefined;
  sha256?: string | undefined;
  mode?: number | undefined;
}

/**
 * Downloads a URL into the workspace: streamed to a temporary file, cut off
 * at the byte cap, verified against the expected sha256 when one is given,
 * and renamed into place only when all of that holds.
 */
export class FetchService {
  constructor(
    private readonly root: WorkspaceRoot,
    private readonly limits: { maxBytes: number; timeoutMs: number },
    private readonly log: Logger,
  ) {}

  async fetch(options: FetchOptions): Promise<WriteResult & { path: string }> {
    const cap = Math.min(options.maxBytes ?? this.limits.maxBytes, this.limits.maxBytes);
    const tooLarge = () =>
      new ApiError("FILE_TOO_LARGE", `download exceeds the limit of ${cap} bytes`, { details: { maxBytes: cap } });
    return this.root.create(options.path, async (target) => {
      const url = new URL(options.url);
      // Only the origin is logged or echoed: paths and queries may carry credentials.
      const origin = url.origin;
      let response: Response;
      try {
        response = await fetch(url, { redirect: "follow", signal: AbortSignal.timeout(this.limits.timeoutMs) });
      } catch (error) {
        this.log.info({ origin, err: error }, "fetch failed");
        throw new ApiError("FETCH_FAILED", `could not fetch from ${origin}: ${describeFetchError(error)}`, {
          cause: error,
        });
      }
      if (!response.ok || response.body === null) {
        await response.body?.cancel();
        throw new ApiError("FETCH_FAILED", `${origin} answered ${response.status}`, {
          details: { status: response.status },
        });
      }
      const declared = Number(response.headers.get("content-length") ?? Number.NaN);
      if (Number.isFinite(declared) && declared > cap) {
        await response.body.cancel();
        throw tooLarge();
      }
      const body = response.body;
      try {
        const result = await onPath(target.rel, () =>
          writeAtomically(target.abs, body, {
            mode: options.mode,
            maxBytes: cap,
            tooLarge,
            expectSha256: options.sha256,
          }),
        );
        this.log.info({ origin, path: target.rel, size: result.size }, "fetched");
        return { path: target.rel, ...result };
      } catch (error) {
        await body
          .cancel()
          .catch((cancelError: unknown) => this.log.debug({ err: cancelError }, "cancel after failure"));
        if (error instanceof ApiError) throw error;
        throw new ApiError("FETCH_FAILED", `download from ${origin} broke off: ${describeFetchError(error)}`, {
          cause: error,
        });
      }
    });
  }
}

function describeFetchError(error: unknown): string {
  if (error instanceof Error && error.name === "TimeoutError") return "timed out";
  const cause = error instanceof Error ? error.cause : undefined;
  if (cause instanceof Error && "code" in cause && typeof cause.code === "string") return cause.code;
  return error instanceof Error ? error.message : String(error);
}
