import { runBackendConformance } from "./backend-conformance.js";
import { MemoryBackend } from "./memory-backend.js";

runBackendConformance("in-memory", async () => {
  const backend = new MemoryBackend({
    images: ["sbx-runtime:latest", "sbx-oom:latest"],
    quittingImages: ["sbx-quits:latest"],
    silentImages: ["sbx-silent:latest"],
  });
  return {
    backend,
    images: {
      runs: "sbx-runtime:latest",
      missing: "sbx-missing:latest",
      quits: "sbx-quits:latest",
      silent: "sbx-silent:latest",
      oom: "sbx-oom:latest",
    },
    createTimeoutMs: 5000,
    kill: (s) =>
      backend.fail(s.id, { code: "exited", message: "exited with code 137 (SIGKILL)", exitCode: 137, at: Date.now() }),
    oomKill: (s) =>
      backend.fail(s.id, { code: "oom-killed", message: "ran out of memory", exitCode: 137, at: Date.now() }),
    removeOutOfBand: (s) => backend.removeOutOfBand(s.id),
    teardown: () => backend.close(),
  };
});
