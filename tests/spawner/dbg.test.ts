import { it } from "vitest";
import { startSpawner } from "../support/spawner.js";
import { removeDeployment, backendOf } from "../support/docker.js";
import { sleep } from "../support/proc.js";
it("dbg", async () => {
  const s = await startSpawner({ env: { SPAWNER_POOL_SIZE: "2", SPAWNER_MAX_SESSIONS: "2", SPAWNER_POOL_INTERVAL_MS: "300", SPAWNER_LOG_LEVEL: "debug" } });
  try {
    await sleep(5000);
    for (const id of ["w0","w2","w3","w4"]) { await s.json("POST", "/v1/sessions", { id, org: "o" }); await sleep(1500); }
    await sleep(2000);
    console.log(JSON.stringify(await backendOf(s.deployment).listPool()));
    const t0 = performance.now();
    const r = await s.json("POST", "/v1/sessions", { id: "w1", org: "o", labels: { team: "pool" }, env: { GREETING: "hi" }, ttlMs: 3600000, idleTimeoutMs: 600000 });
    console.log(r.status, performance.now() - t0);
    console.log(await (await fetch(`${s.metricsUrl()}/metrics`)).text().then(t => t.split("\n").filter(l => l.includes("pool")).join("\n")));
    console.log(s.logs().split("\n").filter(l => /TIMING/.test(l)).join("\n"));
  } finally { await s.stop(); await removeDeployment(s.deployment); }
}, 60000);
