#!/usr/bin/env node
// sbx: the command line for sbx sessions. This entry only turns on Node's compile cache (22.1+)
// before the command line is loaded: every `sbx` run is short, and most of a cold start is
// compiling the same modules again.
import module from "node:module";

module.enableCompileCache?.();
await import("./run.js");
