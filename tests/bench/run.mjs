// Runs one benchmark under plain Node: bundles it (and the workspace TypeScript
// it imports) with esbuild first, since Node does not resolve our `.js`
// specifiers to `.ts` sources.
//
//   node tests/bench/run.mjs <name> [args...]
//
// The benchmarks it knows, with their options, are those of benchmarks.json;
// scripts/performance-doc.test.ts holds docs/performance.md to the same list.
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import BENCHMARKS from "./benchmarks.json" with { type: "json" };

const [name, ...args] = process.argv.slice(2);
if (!name || !Object.hasOwn(BENCHMARKS, name)) {
  if (name) console.error(`unknown benchmark: ${name}`);
  console.error("usage: node tests/bench/run.mjs <benchmark> [args...]\n");
  for (const [known, usage] of Object.entries(BENCHMARKS)) console.error(`  ${known} ${usage}`);
  process.exit(2);
}
const here = new URL("./", import.meta.url);
// At the same depth as tests/support, whose files locate the services relative to themselves.
const outfile = fileURLToPath(new URL(`../.dist/${name}.mjs`, here));
await build({
  entryPoints: [fileURLToPath(new URL(`${name}.ts`, here))],
  outfile,
  bundle: true,
  platform: "node",
  conditions: ["development"],
  target: "node22",
  format: "esm",
  // Workspace packages are bundled; npm packages load from tests/node_modules.
  external: ["dockerode", "eventsource-parser", "tar-stream", "@kubernetes/client-node"],
  logLevel: "warning",
  // Bundled CommonJS dependencies (pino, through the spawner's backends) call require() for built-ins.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
});
const result = spawnSync(process.execPath, [outfile, ...args], { stdio: "inherit" });
process.exit(result.status ?? 1);
