import { createLogger, systemClock } from "@sbx/edge";
import { MemoryBackend } from "@sbx/spawner/testing";
import { describe, expect, it } from "vitest";
import type { BackendSession } from "../backends/backend.js";
import { metaOf, type SessionRecord } from "./session-record.js";
import { SessionRegistry } from "./session-registry.js";

const record: SessionRecord = {
  id: "s1",
  org: "acme",
  owner: null,
  profile: "default",
  image: "sbx-runtime:latest",
  createdAt: 1,
  expiresAt: 10_000_000_000_000,
  idleTimeoutMs: 60_000,
  resources: { cpus: 1, memoryMb: 512, pids: 256 },
  labels: {},
  network: { egress: "deny", allow: [], ports: [80, 443] },
  specDigest: "d",
  workspace: { persistent: false, sizeMb: 1024, storageClass: undefined },
  runnerdKey: "s1",
};
const running: BackendSession = {
  id: "s1",
  meta: metaOf(record),
  state: { phase: "running" },
  endpoint: { host: "10.0.0.2", port: 7070 },
};
const stopped: BackendSession = { ...running, state: { phase: "stopped", at: 1 }, endpoint: undefined };

function registry(): { registry: SessionRegistry; lost: string[] } {
  const made = new SessionRegistry(new MemoryBackend(), systemClock, createLogger("test", "silent"), 60_000);
  const lost: string[] = [];
  made.onLoss((id, why) => lost.push(`${id}:${why}`));
  return { registry: made, lost };
}

describe("the session registry", () => {
  it("ignores a report read before the session was resumed and landing after it: nothing is cut", () => {
    const { registry: r, lost } = registry();
    r.apply("s1", stopped);
    // A lookup (after the stop's events) begins, the resume completes, then that lookup lands.
    const lookupBegan = performance.now();
    r.remember(record, running);
    r.apply("s1", stopped, { observedAt: lookupBegan });
    expect(r.cached("s1")?.state.phase).toBe("running");
    expect(lost).toEqual([]);
  });

  it("takes a report read after the freshest account, and tells of the loss", () => {
    const { registry: r, lost } = registry();
    r.remember(record, running);
    const signal = r.lossSignal("s1");
    r.apply("s1", { ...running, state: { phase: "failed", reason: { code: "exited", message: "x", at: null } } });
    expect(r.cached("s1")?.state.phase).toBe("failed");
    expect(lost).toEqual(["s1:failed"]);
    expect(signal.aborted).toBe(true);
  });

  it("keeps a session remembered while a listing was under way that did not show it yet", async () => {
    const backend = new MemoryBackend();
    const r = new SessionRegistry(backend, systemClock, createLogger("test", "silent"), 60_000);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    backend.list = async () => {
      await gate;
      return [];
    };
    const adopting = r.adopt();
    r.remember(record, running);
    release();
    await adopting;
    expect(r.cached("s1")?.state.phase).toBe("running");
  });
});
