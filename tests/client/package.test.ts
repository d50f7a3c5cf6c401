import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";

const run = promisify(execFile);
const REPO = fileURLToPath(new URL("../../", import.meta.url));
const CLIENT = path.join(REPO, "packages/client");
const TSC = path.join(REPO, "node_modules/typescript/bin/tsc");
// The installed `sbx` starts with `#!/usr/bin/env node`: this Node first on its PATH.
const ManifestSchema = z.object({ dependencies: z.record(z.string(), z.string()) });
const ENV = { ...process.env, PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ""}` };

// Needs the build (`turbo run build`), not Docker. Packing skips the prepack build on purpose:
// turbo would rewrite dist/ under the CLI suite, which runs dist/cli/main.js at the same time.
describe("the @sbx/client tarball from npm pack, installed with npm into an empty directory", () => {
  let work: string;
  let consumer: string;
  let tarball: string;

  beforeAll(async () => {
    work = await mkdtemp(path.join(tmpdir(), "sbx-pack-"));
    consumer = path.join(work, "consumer");
    await run("npm", ["pack", "--ignore-scripts", "--pack-destination", work], { cwd: CLIENT, env: ENV });
    const tarballs = (await readdir(work)).filter((name) => name.endsWith(".tgz"));
    expect(tarballs).toHaveLength(1);
    tarball = path.join(work, tarballs[0] ?? "");
    await run("npm", ["install", "--prefix", consumer, tarball, "--prefer-offline", "--no-audit", "--no-fund"], {
      cwd: work,
      env: ENV,
    });
  });
  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("ships the build and nothing of the workspace: no sources, no workspace: ranges, no @sbx/protocol", async () => {
    const { stdout } = await run("tar", ["-tzf", tarball]);
    const files = stdout.trim().split("\n");
    expect(files).toContain("package/dist/protocol/index.js");
    expect(files).toContain("package/dist/index.d.ts");
    expect(files.filter((file) => !file.startsWith("package/dist/") && file !== "package/package.json")).toEqual([]);
    const { dependencies } = ManifestSchema.parse(
      JSON.parse(await readFile(path.join(consumer, "node_modules/@sbx/client/package.json"), "utf8")),
    );
    expect(Object.keys(dependencies)).not.toContain("@sbx/protocol");
    expect(Object.values(dependencies).filter((range) => range.startsWith("workspace:"))).toEqual([]);
  });

  it("puts sbx in node_modules/.bin, and it runs", async () => {
    const { stdout } = await run(path.join(consumer, "node_modules/.bin/sbx"), ["--help"], { cwd: consumer, env: ENV });
    expect(stdout).toContain("Usage: sbx");
    expect(stdout).toContain("Commands:");
  });

  it("imports SandboxClient as an ES module", async () => {
    const script = 'import { SandboxClient } from "@sbx/client"; console.log(typeof SandboxClient);';
    const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { cwd: consumer, env: ENV });
    expect(stdout.trim()).toBe("function");
  });

  it("gives a TypeScript consumer (nodenext) the SDK's types, declarations checked too", async () => {
    await writeFile(
      path.join(consumer, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "es2023",
          module: "nodenext",
          moduleResolution: "nodenext",
          strict: true,
          noEmit: true,
          skipLibCheck: false,
          types: ["node"],
          // A consumer has its own @types/node (the SDK's types use Node streams); this one borrows ours, offline.
          typeRoots: [path.join(REPO, "node_modules/@types")],
        },
        files: ["consumer.mts"],
      }),
    );
    await writeFile(
      path.join(consumer, "consumer.mts"),
      [
        'import { type ExecEvent, SandboxClient, SessionNotFoundError } from "@sbx/client";',
        'const client = new SandboxClient({ baseUrl: "http://127.0.0.1:8080", secret: "s" });',
        'const session = await client.createSession({ org: "demo" });',
        "// @ts-expect-error a session id is a string: this line fails to compile only if the types resolved",
        "const wrong: number = session.id;",
        'const handle = await client.session(session.id).exec({ shell: "true" });',
        "const events: ExecEvent[] = [];",
        "for await (const event of handle) events.push(event);",
        "console.log(wrong, events, SessionNotFoundError);",
        "",
      ].join("\n"),
    );
    const result = await run(process.execPath, [TSC, "-p", consumer], { cwd: consumer, env: ENV }).catch(
      (error: { stdout?: string; stderr?: string }) => ({ stdout: error.stdout ?? "", stderr: error.stderr ?? "" }),
    );
    expect(`${result.stdout}${result.stderr}`).toBe("");
  });
});
