import { createDatabase } from "@lakeferry/db";
import { AllQueues } from "@lakeferry/queue";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { registerBacklogMetrics } from "../src/index.ts";
import { parsePrometheusText, sampleValue } from "./prometheus-text.ts";

describe("registerBacklogMetrics", () => {
  it("still answers a scrape when Redis and Postgres do not, counting the failed reads", async () => {
    // Nothing listens on port 1: Postgres refuses at once, the queues' Redis waits (and the deadline ends it).
    const db = createDatabase({ connectionString: "postgresql://u:p@127.0.0.1:1/none", maxConnections: 1 });
    const queues = new AllQueues({ redisUrl: "redis://127.0.0.1:1", prefix: "lf-metrics-unreachable" });
    const registry = new Registry();
    registerBacklogMetrics(registry, { db, queues, timeoutMs: 300 });
    try {
      const m = parsePrometheusText(await registry.metrics());
      expect(sampleValue(m, "lakeferry_metrics_read_errors_total", { source: "queues" })).toBe(1);
      expect(sampleValue(m, "lakeferry_metrics_read_errors_total", { source: "files" })).toBe(1);
      expect(sampleValue(m, "lakeferry_queue_jobs")).toBeUndefined();
      expect(sampleValue(m, "lakeferry_files")).toBeUndefined();
    } finally {
      await queues.close();
      await db.close();
    }
  });
});
