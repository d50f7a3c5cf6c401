import { build } from "esbuild";
import { bundleService } from "../../scripts/bundle-service.mjs";

await bundleService(new URL("./", import.meta.url), "gateway", "GATEWAY_VERSION", build);
