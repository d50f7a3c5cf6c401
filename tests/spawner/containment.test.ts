import { ExecResultSchema, SessionResponseSchema } from "@sbx/protocol";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { docker, dockerUnavailable, inspect, removeDeployment } from "../support/docker.js";
import { pollUntil } from "../support/proc.js";
import { skippedBecause, skipUnlessPlatform } from "../support/skips.js";
import { type SpawnerHandle, startSpawner } from "../support/spawner.js";
import { readEvents } from "../support/sse.js";
import { BLOCKED, parseTcpReach, tcpProbeArgv } from "../support/tcp-probe.js";

const skip = skipUnlessPlatform("Docker", await dockerUnavailable(), "containment tests");

/** A container's processes as the host lists them (`docker top`): no fork inside it, even when its pid table is full. */
async function hostProcesses(container: string): Promise<string[]> {
  const listed = (await docker("top", container, "-eo", "pid")).split("\n").slice(1);
  return listed.filter((line) => line.trim() !== "");
}

/** What a test sees of one `?wait=true` exec. */
async function run(spawner: SpawnerHandle, id: string, body: Record<string, unknown>) {
  const result = await spawner.json("POST", `/v1/sessions/${id}/execs?wait=true`, body);
  expect(result.status, JSON.stringify(result.body)).toBe(200);
  return ExecResultSchema.parse(result.body);
}

describe("an exec cannot take down its session, escape cancel, or reach past it", skippedBecause(skip), () => {
  let spawner: SpawnerHandle;

  beforeAll(async () => {
    spawner = await startSpawner({ env: { SPAWNER_MAX_PIDS: "8192" } });
    for (const id of ["victim", "neighbor"]) {
      const created = await spawner.json("POST", "/v1/sessions", {
        id,
        org: "attack",
        resources: { memoryMb: 256, cpus: 0.5, pids: 256 },
      });
      expect(created.status).toBe(201);
    }
  });
  afterAll(async () => {
    await spawner?.stop();
    if (spawner) await removeDeployment(spawner.deployment);
  });

  /** The session still answers, and so does its neighbour, after each attack. */
  async function bothAlive() {
    for (const id of ["victim", "neighbor"]) {
      const session = SessionResponseSchema.parse((await spawner.json("GET", `/v1/sessions/${id}`)).body).session;
      expect(session.state).toBe("ready");
      expect((await run(spawner, id, { argv: ["true"] })).outcome).toBe("completed");
    }
  }

  it("ends a full /tmp or $HOME in ENOSPC for the exec, and nothing else", async () => {
    for (const dir of ["/tmp", "$HOME"]) {
      const filled = await run(spawner, "victim", { shell: `dd if=/dev/zero of=${dir}/fill bs=1M count=4096` });
      expect(filled.exitCode).not.toBe(0);
      expect(filled.stderr).toMatch(/No space left on device/);
    }
    await bothAlive();
    // Full scratch and memory pressure at once: still the exec, not runnerd.
    const pressed = await run(spawner, "victim", {
      argv: ["node", "-e", "const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))"],
    });
    expect(pressed.outcome).toBe("failed");
    await run(spawner, "victim", { shell: 'rm -f /tmp/fill "$HOME/fill"' });
    await bothAlive();
  });

  it("kills an exec's process, never runnerd, whichever way it runs out of memory", async () => {
    // One process growing past the limit.
    const one = await run(spawner, "victim", {
      argv: ["node", "-e", "const a = []; for (;;) a.push(Buffer.alloc(1 << 20, 1))"],
    });
    expect(one).toMatchObject({ outcome: "failed", signal: "SIGKILL" });
    await bothAlive();

    // Many processes, each smaller than runnerd: only the OOM scores keep runnerd out of reach.
    const many = await run(spawner, "victim", {
      shell:
        "for i in $(seq 1 20); do (x=$(head -c 20000000 /dev/zero | tr '\\0' a); sleep 3; echo survived) & done; wait",
      timeoutMs: 60_000,
    });
    const survivors = many.stdout.split("\n").filter((l) => l === "survived").length;
    expect(survivors).toBeLessThan(20);
    await bothAlive();

    // Memory held by the exec's own shell, in a variable.
    const shell = await run(spawner, "victim", {
      shell: "x=$(head -c 400000000 /dev/zero | tr '\\0' a); echo $x | wc -c",
    });
    expect(shell.outcome).toBe("failed");
    await bothAlive();
  });

  it("survives a fork bomb, and a cancel ends all of it", async () => {
    const bomb = await readEvents(
      await spawner.request("POST", "/v1/sessions/victim/execs", {
        body: JSON.stringify({ execId: "bomb", shell: "b() { b | b & }; b; sleep 600" }),
      }),
      (event) => event.type === "started",
    );
    expect(bomb.events[0]?.type).toBe("started");
    // Until the bomb has grown to most of the session's pid limit (256), seen from the host, where
    // listing the container's processes needs no fork inside it.
    const container = `sbx-${spawner.deployment}-victim`;
    const grown = await pollUntil(
      async () => (await hostProcesses(container)).length,
      (n) => n >= 150,
      30_000,
      200,
    );
    expect(grown, "processes in the victim while the bomb runs").toBeGreaterThanOrEqual(150);
    const cancel = await spawner.json("POST", "/v1/sessions/victim/execs/bomb/cancel", { signal: "SIGKILL" });
    expect(cancel.status).toBe(202);
    await expectNoStragglers(/b \| b|sleep 600/);
    await bothAlive();
  });

  /** The victim's processes, from `ps` in a fresh exec; undefined while no exec can start (a full pid table). */
  async function victimProcesses(): Promise<Array<{ stat: string; args: string }> | undefined> {
    const response = await spawner.json("POST", "/v1/sessions/victim/execs?wait=true", {
      argv: ["ps", "-e", "-ww", "-o", "stat=,args="],
    });
    if (response.status !== 200) return undefined;
    const listed = ExecResultSchema.parse(response.body)
      .stdout.split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => {
        const [, stat = "", args = ""] = /^\s*(\S+)\s+(.*)$/.exec(line) ?? [];
        return { stat, args };
      });
    // A real listing shows the ps that made it: an empty or garbled one must not read as "none left".
    if (!listed.some((p) => p.args.startsWith("ps -e -ww")))
      throw new Error(`not a process list: ${JSON.stringify(listed)}`);
    return listed;
  }

  /** Waits until none of the victim's processes matches `pattern` and none is a zombie; fails naming what is left. */
  async function expectNoStragglers(pattern: RegExp) {
    const left = await pollUntil(
      async () =>
        (await victimProcesses())
          ?.filter((p) => pattern.test(p.args) || p.stat.startsWith("Z"))
          .map((p) => `${p.stat} ${p.args}`),
      (stragglers) => stragglers?.length === 0,
      10_000,
      200,
    );
    expect(left, "a process list from the victim").toBeDefined();
    expect(left).toEqual([]);
  }

  /** Every way a process can try to leave its exec behind. */
  const ZOO = [
    "(setsid env -i /bin/sleep 1771 &)",
    "nohup sleep 1772 >/dev/null 2>&1 &",
    "( ( sleep 1773 & ) & )",
    "(exec 0<&- 1>&- 2>&-; setsid sleep 1774 &)",
    "(setsid env -i sh -c '(sleep 1775 &)' >/dev/null 2>&1 &)",
    "bash -c 'trap \"\" TERM HUP; exec -a stubborn-1776 sleep 1776' >/dev/null 2>&1 &",
    "(setsid env -i bash -c 'exec 0<&- 1>&- 2>&-; trap \"\" TERM; while :; do sleep 1; done' &)",
  ].join("\n");

  /**
   * The processes ZOO leaves behind, by their exact command lines. Matched exactly: the exec's
   * own shell and its subshells carry the whole script in theirs, so a pattern such as
   * /sleep 17\d\d/ counts them and is satisfied before (or without) any process that left.
   */
  const ZOO_LEFT = [
    "/bin/sleep 1771",
    "sleep 1772",
    "sleep 1773",
    "sleep 1774",
    "sleep 1775",
    "stubborn-1776 1776",
    'bash -c exec 0<&- 1>&- 2>&-; trap "" TERM; while :; do sleep 1; done',
  ];

  /** Waits until every process ZOO leaves runs (they start in the background, in no set time). */
  async function expectZooRunning() {
    const missing = await pollUntil(
      async () => {
        const running = new Set((await victimProcesses())?.map((p) => p.args));
        return ZOO_LEFT.filter((args) => !running.has(args));
      },
      (notYet) => notYet.length === 0,
      15_000,
      100,
    );
    expect(missing, "processes the zoo left that never ran").toEqual([]);
  }

  it("cancel reaches every process an exec started, however it left, while the exec runs", async () => {
    await readEvents(
      await spawner.request("POST", "/v1/sessions/victim/execs", {
        body: JSON.stringify({ execId: "zoo", shell: `${ZOO}\necho ready\nsleep 600` }),
      }),
      (event) => event.type === "stdout",
    );
    await expectZooRunning();
    const cancel = await spawner.json("POST", "/v1/sessions/victim/execs/zoo/cancel", {
      signal: "SIGTERM",
      graceMs: 1000,
    });
    expect(cancel.status).toBe(202);
    await expectNoStragglers(/sleep 17\d\d|stubborn|while :/);
    await bothAlive();
  });

  it("cancel reaches what an exec left behind after it exited", async () => {
    const left = await run(spawner, "victim", { execId: "gone", shell: `${ZOO}\necho done` });
    expect(left.outcome, JSON.stringify(left)).toBe("completed");
    await expectZooRunning();
    const cancel = await spawner.json("POST", "/v1/sessions/victim/execs/gone/cancel", { signal: "SIGKILL" });
    expect(cancel.status).toBe(202);
    await expectNoStragglers(/sleep 17\d\d|stubborn|while :/);
  });

  it("lets no session connect to another session's ports or the spawner's, while the spawner reaches both", async () => {
    // The neighbour serves something of its own besides runnerd: a dev server.
    await spawner.request("POST", "/v1/sessions/neighbor/execs", {
      body: JSON.stringify({
        execId: "devserver",
        argv: ["node", "-e", "require('http').createServer((q, s) => s.end('dev')).listen(3000)"],
      }),
    });
    const neighbor = await inspect(`sbx-${spawner.deployment}-neighbor`);
    const network = Object.values(neighbor.NetworkSettings.Networks)[0];
    const neighborIp = network?.IPAddress ?? "";
    const gateway = network?.Gateway ?? "";
    expect(neighborIp).not.toBe("");
    // The neighbour itself does serve: from inside it, its dev server answers (once it listens).
    const served = await pollUntil(
      async () =>
        (await run(spawner, "neighbor", { argv: ["curl", "-s", "-m", "3", "http://127.0.0.1:3000/"] })).stdout,
      (body) => body === "dev",
      10_000,
      100,
    );
    expect(served).toBe("dev");
    const spawnerPort = Number(new URL(spawner.url).port);
    const metricsPort = Number(new URL(spawner.metricsUrl()).port);
    for (const [host, port] of [
      [neighborIp, 7070],
      [neighborIp, 3000],
      [gateway, spawnerPort],
      [gateway, metricsPort],
      ["127.0.0.1", spawnerPort],
    ] as const) {
      const attempt = await run(spawner, "victim", { argv: tcpProbeArgv(host, port) });
      expect(BLOCKED, `${host}:${port}`).toContain(parseTcpReach(attempt.stdout));
    }
    await bothAlive();
    await spawner.json("POST", "/v1/sessions/neighbor/execs/devserver/cancel", { signal: "SIGKILL" });
  });

  it("keeps the sessions' network without inter-container traffic", async () => {
    const [network] = z
      .array(z.object({ Options: z.record(z.string(), z.string()) }))
      .parse(JSON.parse(await docker("network", "inspect", `sbx-${spawner.deployment}`)));
    expect(network?.Options["com.docker.network.bridge.enable_icc"]).toBe("false");
  });
});
