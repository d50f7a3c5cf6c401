import { cp, readdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { bundleService } from "../../scripts/bundle-service.mjs";

const dist = fileURLToPath(new URL("./dist/", import.meta.url));

// The CLI as one module (dist/cli/sbx.mjs), which dist/cli/main.js loads when it is there.
await bundleService(new URL("./", import.meta.url), "cli/sbx", "SBX_CLI_VERSION", build, "src/cli/run.ts");

// @sbx/protocol is not published, so the SDK carries its build in dist/protocol and imports it by a
// relative path: `npm pack` then gives one tarball that installs with no workspace package beside
// it. Its JavaScript and its declarations are both vendored, since the SDK's types use the protocol's.
const protocolPackage = fileURLToPath(new URL("../protocol/", import.meta.url));
const protocolDist = path.join(protocolPackage, "dist");
const vendored = path.join(dist, "protocol");
await assertProtocolDependenciesShipped();
await cp(protocolDist, vendored, { recursive: true, filter: (source) => !source.endsWith(".map") });
for (const file of await readdir(dist, { recursive: true })) {
  const absolute = path.join(dist, file);
  if (absolute.startsWith(vendored + path.sep) || !/\.(js|d\.ts)$/.test(file)) continue;
  const text = await readFile(absolute, "utf8");
  let specifier = path.relative(path.dirname(absolute), path.join(vendored, "index.js")).split(path.sep).join("/");
  if (!specifier.startsWith(".")) specifier = `./${specifier}`;
  // tsc writes import specifiers as the sources spell them: always this double-quoted string.
  const rewritten = text.replaceAll('"@sbx/protocol"', JSON.stringify(specifier));
  if (rewritten.includes("@sbx/protocol")) {
    throw new Error(`${file} still refers to @sbx/protocol after its imports were rewritten`);
  }
  if (rewritten !== text) await writeFile(absolute, rewritten);
}

/** The vendored protocol imports its own dependencies; the client must declare every one of them. */
async function assertProtocolDependenciesShipped() {
  const manifest = async (dir) => JSON.parse(await readFile(path.join(dir, "package.json"), "utf8"));
  const client = await manifest(fileURLToPath(new URL("./", import.meta.url)));
  const protocol = await manifest(protocolPackage);
  const missing = Object.keys(protocol.dependencies ?? {}).filter((name) => !(name in client.dependencies));
  if (missing.length > 0) {
    throw new Error(`@sbx/protocol depends on ${missing.join(", ")}: add them to @sbx/client's dependencies`);
  }
}
