import { build } from "esbuild";
import { bundleService } from "../../scripts/bundle-service.mjs";

await bundleService(new URL("./", import.meta.url), "spawner", "SPAWNER_VERSION", build);
