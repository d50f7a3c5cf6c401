// What isolating sessions costs on Docker, in one run, alternating: the exec round trip of
// `true` through the spawner when it reaches runnerd by the container's address (the default:
// host-routed, no extra hop) and through a port published on 127.0.0.1 (Docker's port proxy),
// against runnerd reached directly at the container's address (no spawner at all).
//
//   node tests/bench/run.mjs isolation-bench [--runs 300]
//
// Needs a Docker engine, the built spawner and sbx-runtime:latest (`bun run images`).
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { signRequest } from "@sbx/protocol";
import { runnerdToken } from "@sbx/spawner";
import { inspect, removeDeployment } from "../support/docker.js";
import { type SpawnerHandle, startSpawner } from "../support/spawner.js";
import { measureAlternating, ms, request, stats, whole } from "./measure.js";

const { values } = parseArgs({ options: { runs: { type: "string", default: "300" } } });
const RUNS = Number(values.runs);

async function main() {
  const byAddress = await startSpawner({ env: { SPAWNER_RUNNERD_ACCESS: "address" } });
  const published = await startSpawner({ env: { SPAWNER_RUNNERD_ACCESS: "published" } });
  try {
    const roundTrip = (spawner: SpawnerHandle) => {
      const path = "/v1/sessions/iso/execs?wait=true";
      const body = JSON.stringify({ argv: ["true"] });
      return whole(async () => {
        // Signed anew each time: a nonce is good for one request.
        const headers = {
          ...signRequest({ keyId: spawner.keyId, secret: spawner.secret, method: "POST", pathWithQuery: path, body }),
          "content-type": "application/json",
        };
        const status = await request(`${spawner.url}${path}`, "POST", headers, body, () => {});
        if (status !== 200) throw new Error(`exec: ${status}`);
      });
    };
    for (const spawner of [byAddress, published]) {
      const created = await spawner.json("POST", "/v1/sessions", { id: "iso", org: "bench" });
      if (created.status !== 201) throw new Error(`create: ${created.status}`);
    }
    // runnerd itself, at the container's address, with the token the spawner derives.
    const container = await inspect(`sbx-${byAddress.deployment}-iso`);
    const ip = Object.values(container.NetworkSettings.Networks)[0]?.IPAddress ?? "";
    const token = runnerdToken(byAddress.runnerdSecret, "iso");
    const direct = whole(async () => {
      const status = await request(
        `http://${ip}:7070/v1/execs?wait=true`,
        "POST",
        { authorization: `Bearer ${token}`, "content-type": "application/json" },
        JSON.stringify({ argv: ["true"] }),
        () => {},
      );
      if (status !== 200) throw new Error(`direct exec: ${status}`);
    });
    const [d, a, p] = await measureAlternating([direct, roundTrip(byAddress), roundTrip(published)], {
      runs: RUNS,
      block: 25,
    });
    const base = stats(d ?? []).median;
    console.log(`isolation benchmark — ${new Date().toISOString()}, Node ${process.version}, ${cpus().length} CPUs`);
    console.log(`(exec round trip of \`true\`, ${RUNS} each, alternating blocks of 25)\n`);
    console.log("| path | median | p90 | vs runnerd direct |");
    console.log("|---|---|---|---|");
    for (const [name, samples] of [
      ["runnerd direct, by address (no spawner)", d],
      ["spawner → runnerd by address (default)", a],
      ["spawner → runnerd through a published port", p],
    ] as const) {
      const s = stats(samples ?? []);
      console.log(`| ${name} | ${ms(s.median)} | ${ms(s.p90)} | ${(s.median / base).toFixed(2)}× |`);
    }
  } finally {
    for (const spawner of [byAddress, published]) {
      await spawner.stop();
      await removeDeployment(spawner.deployment);
    }
  }
}

await main();
