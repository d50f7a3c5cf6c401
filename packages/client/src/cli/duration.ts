const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `30m`, `2h`, `1d`, `500ms`, or a combination like `1h30m`; milliseconds. */
export function parseDuration(text: string): number {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text) {
    throw new UsageError(`not a duration: ${JSON.stringify(text)} (use e.g. 90s, 30m, 2h, 1d)`);
  }
  return Math.round(parts.reduce((sum, [, n, unit]) => sum + Number(n) * (UNITS[unit ?? "ms"] ?? 1), 0));
}

/** `2h 5m`, `45s`, `3d 4h`: the two largest units. */
export function formatDuration(ms: number): string {
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const units: Array<[string, number]> = [
    ["d", 86_400_000],
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ];
  const out: string[] = [];
  let rest = ms;
  for (const [name, size] of units) {
    const n = Math.floor(rest / size);
    if (n > 0 || out.length > 0) {
      if (n > 0) out.push(`${n}${name}`);
      rest -= n * size;
    }
    if (out.length === 2) break;
  }
  return out.join(" ");
}

/** A mistake in how the command was called: exit code 2, with the command's usage. */
export class UsageError extends Error {
  override name = "UsageError";
  /** The usage line of the command it concerns, when known. */
  usage: string | undefined;
}
