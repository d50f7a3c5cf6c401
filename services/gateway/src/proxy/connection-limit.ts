import { ApiError } from "@sbx/protocol";

/** Connections each session holds open at once, bounded: one session cannot take the gateway from the others. */
export class ConnectionLimit {
  private readonly open = new Map<string, number>();

  constructor(private readonly max: number) {}

  /** Counts one more connection of `sessionId`; the returned function gives it back (once). */
  take(sessionId: string): () => void {
    const now = this.open.get(sessionId) ?? 0;
    if (now >= this.max) {
      throw new ApiError("TOO_MANY_REQUESTS", `the session holds ${this.max} connections through the gateway already`, {
        headers: { "Retry-After": "1" },
      });
    }
    this.open.set(sessionId, now + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = (this.open.get(sessionId) ?? 1) - 1;
      if (left <= 0) this.open.delete(sessionId);
      else this.open.set(sessionId, left);
    };
  }
}
