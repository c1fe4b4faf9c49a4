import { createDatabase } from "@lakeferry/db";
import { AllQueues } from "@lakeferry/queue";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { discoverFiles } from "@lakeferry/pipeline";
import { createWorld, env, jsonRows } from "../../pipeline/test/support.ts";
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

  it("counts files by status at most once per filesMaxAgeMs, and not at all with files off", async () => {
    const w = await createWorld();
    const queues = new AllQueues({ redisUrl: env.redisUrl, prefix: w.prefix });
    try {
      const ingestion = await w.ingestion();
      await w.file("a.json", jsonRows(0, 1));
      await discoverFiles(w, ingestion);
      const cached = new Registry();
      registerBacklogMetrics(cached, { db: w.db, queues, filesMaxAgeMs: 60_000 });
      const fresh = new Registry();
      registerBacklogMetrics(fresh, { db: w.db, queues, filesMaxAgeMs: 0 });
      const off = new Registry();
      registerBacklogMetrics(off, { db: w.db, queues, files: false });
      const pending = async (registry: Registry) =>
        sampleValue(parsePrometheusText(await registry.metrics()), "lakeferry_files", {
          ingestion: "orders",
          status: "PENDING",
        });
      expect(await pending(cached)).toBe(1);

      await w.file("b.json", jsonRows(1, 1));
      await discoverFiles(w, ingestion);
      expect(await pending(fresh)).toBe(2);
      // Within its age the first count is served again: Postgres is not asked.
      expect(await pending(cached)).toBe(1);
      const m = parsePrometheusText(await off.metrics());
      expect(m.has("lakeferry_files")).toBe(false);
      expect(sampleValue(m, "lakeferry_metrics_read_errors_total")).toBeUndefined();
    } finally {
      await queues.close();
      await w.close();
    }
  });
});
