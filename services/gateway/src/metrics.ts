import { Counter, collectDefaultMetrics, Gauge, Registry } from "prom-client";

/** Prometheus metrics of one gateway replica, served on its admin listener at /metrics. */
export class Metrics {
  readonly registry = new Registry();
  readonly connections = new Counter({
    name: "sbx_gateway_connections_total",
    help: "Connections and forwarded requests sessions asked for, by kind (connect, http), decision and rule.",
    labelNames: ["kind", "decision", "rule"] as const,
    registers: [this.registry],
  });
  readonly bytes = new Counter({
    name: "sbx_gateway_bytes_total",
    help: "Bytes through the gateway, by direction (up: from sessions, down: to sessions).",
    labelNames: ["direction"] as const,
    registers: [this.registry],
  });
  readonly active = new Gauge({
    name: "sbx_gateway_active_connections",
    help: "Connections open through the gateway now.",
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
