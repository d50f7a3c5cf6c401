import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

/** Prometheus metrics of one spawner replica, served at /metrics. */
export class Metrics {
  readonly registry = new Registry();
  readonly creates = new Counter({
    name: "sbx_session_creates_total",
    help: "Session create requests by outcome (created, existing, refused, failed).",
    labelNames: ["outcome"] as const,
    registers: [this.registry],
  });
  readonly createSeconds = new Histogram({
    name: "sbx_session_create_seconds",
    help: "Time from create request to a ready session.",
    buckets: [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30],
    registers: [this.registry],
  });
  readonly execsStarted = new Counter({
    name: "sbx_execs_started_total",
    help: "Exec requests proxied to runnerd.",
    registers: [this.registry],
  });
  readonly proxiedBytes = new Counter({
    name: "sbx_proxied_bytes_total",
    help: "Bytes proxied between clients and runnerd, by direction (up: to runnerd, down: to the client).",
    labelNames: ["direction"] as const,
    registers: [this.registry],
  });
  readonly stops = new Counter({
    name: "sbx_session_stops_total",
    help: "Sessions stopped (by a call or by idleness).",
    registers: [this.registry],
  });
  readonly resumeSeconds = new Histogram({
    name: "sbx_session_resume_seconds",
    help: "Time from a resume (asked for, or by a call to a stopped session) to runnerd answering.",
    buckets: [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30],
    registers: [this.registry],
  });
  readonly poolClaims = new Counter({
    name: "sbx_pool_claims_total",
    help: "Creates served by claiming a warm pool member, by profile.",
    labelNames: ["profile"] as const,
    registers: [this.registry],
  });
  readonly poolStarts = new Counter({
    name: "sbx_pool_starts_total",
    help: "Warm pool members started by this replica, by profile and outcome (ready, failed).",
    labelNames: ["profile", "outcome"] as const,
    registers: [this.registry],
  });
  readonly poolMembers = new Gauge({
    name: "sbx_pool_members",
    help: "Running warm pool members, by profile, as this replica last saw them.",
    labelNames: ["profile"] as const,
    registers: [this.registry],
  });
  readonly sweeps = new Counter({
    name: "sbx_sweeps_total",
    help: "Sweeper runs.",
    registers: [this.registry],
  });
  readonly reaped = new Counter({
    name: "sbx_sessions_reaped_total",
    help: "Sessions ended by the sweeper, by reason (ttl, idle, lifetime, failed, abandoned).",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });

  constructor(countsByState: () => Record<string, number>) {
    new Gauge({
      name: "sbx_sessions",
      help: "Sessions this replica knows, by state.",
      labelNames: ["state"] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [state, count] of Object.entries(countsByState())) this.set({ state }, count);
      },
    });
    collectDefaultMetrics({ register: this.registry });
  }
}
