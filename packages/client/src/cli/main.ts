#!/usr/bin/env node
// sbx: the command line for sbx sessions. This entry turns on Node's compile cache (22.1+) before
// the command line is loaded, and loads it as one bundled module when the build made one: every
// `sbx` run is short, and most of a cold start is finding and compiling the same modules again.
import { existsSync } from "node:fs";
import module from "node:module";

module.enableCompileCache?.();
const bundle = new URL("./sbx.mjs", import.meta.url);
await import(existsSync(bundle) ? bundle.href : "./run.js");
