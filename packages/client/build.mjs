import { build } from "esbuild";
import { bundleService } from "../../scripts/bundle-service.mjs";

// The CLI as one module (dist/cli/sbx.mjs), which dist/cli/main.js loads when it is there.
await bundleService(new URL("./", import.meta.url), "cli/sbx", "SBX_CLI_VERSION", build, "src/cli/run.ts");
