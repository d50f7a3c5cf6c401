// Bundles a program into a single ES module that runs with plain `node` and no
// node_modules: each service (the file the images copy), and the sbx CLI (one
// file to load instead of dozens of modules: a faster start for every command).
import { readFileSync } from "node:fs";

/**
 * @param {URL} serviceDir   the service's directory (its package.json gives the version)
 * @param {string} name      output name: dist/<name>.mjs
 * @param {string} versionConstant  the global the version is compiled into
 * @param {typeof import("esbuild").build} build  esbuild, as resolved from the service
 * @param {string} [entry]   the entry point (default src/main.ts)
 */
export async function bundleService(serviceDir, name, versionConstant, build, entry = "src/main.ts") {
  const pkg = JSON.parse(readFileSync(new URL("package.json", serviceDir), "utf8"));
  await build({
    absWorkingDir: new URL(".", serviceDir).pathname,
    entryPoints: [entry],
    outfile: `dist/${name}.mjs`,
    bundle: true,
    platform: "node",
    // Workspace packages are bundled from their TypeScript sources.
    conditions: ["development"],
    target: "node22",
    format: "esm",
    minify: true,
    // Readable stack traces in the logs, still half the size and parse time.
    keepNames: true,
    sourcemap: false,
    legalComments: "none",
    define: { [versionConstant]: JSON.stringify(pkg.version) },
    // Bundled CommonJS dependencies call require() for Node built-ins and some read __dirname.
    banner: {
      js: [
        "import { createRequire as __createRequire } from 'node:module';",
        "import { fileURLToPath as __fileURLToPath } from 'node:url';",
        "import { dirname as __pathDirname } from 'node:path';",
        "const require = __createRequire(import.meta.url);",
        "const __filename = __fileURLToPath(import.meta.url);",
        "const __dirname = __pathDirname(__filename);",
      ].join(" "),
    },
    logLevel: "warning",
  });
}
