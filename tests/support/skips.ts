import type { TestOptions } from "vitest";

declare module "vitest" {
  interface TaskMeta {
    /**
     * Why the test did not run. vitest's JSON report carries a test's meta but not its skip note,
     * so this is where scripts/test-summary.mjs reads the reason it lists beside each skipped test.
     */
    skipReason?: string;
  }
}

/** Whether this run is CI's (.ci/run exports CI=1; most CI services set CI=true). */
export function onCi(env: NodeJS.ProcessEnv = process.env): boolean {
  const value = env.CI?.toLowerCase();
  return value !== undefined && value !== "" && value !== "0" && value !== "false";
}

/**
 * What a suite does when the platform it needs is missing (`missing` says why; undefined when it is
 * there). Locally the suite is skipped and says so on stderr. On CI the file fails instead: .ci/run
 * provisions Docker, compose v2, the cluster and the tools the runnerd tests need, so a missing
 * platform there means provisioning broke, and a skip would let that read as green.
 */
export function skipUnlessPlatform(platform: string, missing: string | undefined, suite: string): string | undefined {
  if (missing === undefined) return undefined;
  if (onCi()) throw new Error(`CI requires ${platform}: provisioning broke: ${missing}`);
  console.warn(`SKIPPING ${suite}: ${missing}`);
  return missing;
}

/**
 * Options for `describe` that skip the suite when `reason` is given, with the reason in every
 * test's meta (a suite-level skip has no other place the JSON report would show it).
 */
export function skippedBecause(reason: string | undefined): TestOptions {
  return reason === undefined ? {} : { skip: true, meta: { skipReason: reason } };
}
