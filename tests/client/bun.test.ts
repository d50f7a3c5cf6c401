import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dockerUnavailable, removeDeployment } from "../support/docker.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";
import { type SpawnerHandle, startSpawner } from "../support/spawner.js";

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL("./fixtures/bun-smoke.ts", import.meta.url));

async function bunUnavailable(): Promise<string | undefined> {
  const docker = await dockerUnavailable();
  if (docker) return docker;
  try {
    await run("bun", ["--version"]);
    return undefined;
  } catch {
    return "bun is not on the PATH";
  }
}

const skip = skipUnlessPlatform("Docker and bun", await bunUnavailable(), "the SDK-under-Bun test");

describe("the SDK under Bun", skippedBecause(skip), () => {
  let spawner: SpawnerHandle;

  beforeAll(async () => {
    spawner = await startSpawner();
  });
  afterAll(async () => {
    await spawner?.stop();
    if (spawner) await removeDeployment(spawner.deployment);
  });

  it("creates a session, streams an exec, moves a file and deletes it, in Bun", async () => {
    const { stdout } = await run("bun", ["run", SCRIPT], {
      env: { ...process.env, SBX_URL: spawner.url, SBX_KEY_ID: spawner.keyId, SBX_SECRET: spawner.secret },
    });
    const result = JSON.parse(stdout);
    // stdout and stderr are separate pipes: their relative order is not promised.
    expect([...result.events].sort()).toEqual(["exit", "started", "stderr", "stdout"]);
    expect(result.events[0]).toBe("started");
    expect(result.events.at(-1)).toBe("exit");
    expect(result).toMatchObject({
      runtime: "bun",
      stdout: "from-bun\n",
      stderr: "oops\n",
      exitCode: 5,
      text: "streamed from bun",
      gone: true,
    });
  });
});
