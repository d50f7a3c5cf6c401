import { defineConfig } from "vitest/config";

// A test that skips itself keeps its reason where the JSON report (and so .ci/run's summary) shows it.
const setupFiles = ["tests/support/skip-notes.ts"];

export default defineConfig({
  // Workspace packages are tested from their TypeScript sources, not their builds.
  resolve: { conditions: ["development"] },
  ssr: { resolve: { conditions: ["development"] } },
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: [
            "packages/*/src/**/*.test.ts",
            "services/*/src/**/*.test.ts",
            "services/*/testing/**/*.test.ts",
            "scripts/**/*.test.ts",
          ],
          setupFiles,
        },
      },
      {
        test: {
          name: "docker",
          include: ["tests/spawner/**/*.test.ts", "tests/client/**/*.test.ts", "tests/compose/**/*.test.ts"],
          setupFiles,
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // testcontainers' reaper container cannot be pulled where there is no registry;
          // every suite removes what it made in its own teardown.
          env: { TESTCONTAINERS_RYUK_DISABLED: "true" },
        },
      },
      {
        test: {
          name: "kubernetes",
          include: ["tests/kubernetes/**/*.test.ts"],
          setupFiles,
          // One file at a time: they share one cluster (on CI, one 2-core machine).
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 300_000,
          env: { TESTCONTAINERS_RYUK_DISABLED: "true" },
        },
      },
      {
        test: {
          name: "runnerd",
          include: ["tests/runnerd/**/*.test.ts"],
          setupFiles,
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
    // The JSON report is what .ci/run sums into its final "N passed, N failed, N skipped" line.
    reporters: ["default", "json"],
    outputFile: { json: ".test-results/vitest.json" },
  },
});
