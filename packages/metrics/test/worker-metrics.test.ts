/**
 * A worker runtime with its metrics served (real Postgres, Redis and Spark): `/metrics` parses as
 * Prometheus text, and its counters and gauges move as files are discovered and ingested.
 */
import { createLogger } from "@lakeferry/core";
import { discoverFiles, PipelineEvents, waitForRun } from "@lakeferry/pipeline";
import { afterEach, describe, expect, it } from "vitest";
import { MetricsServer } from "../src/index.ts";
import { createWorld, env, eventually, jsonRows, type TestWorld } from "../../pipeline/test/support.ts";
import { parsePrometheusText, sampleValue, type Family } from "./prometheus-text.ts";

let world: TestWorld | undefined;
let metrics: MetricsServer | undefined;

afterEach(async () => {
  await metrics?.close();
  await world?.close();
  metrics = undefined;
  world = undefined;
});

async function scrape(url: string): Promise<Map<string, Family>> {
  const response = await fetch(`${url}/metrics`);
  expect(response.status).toBe(200);
  return parsePrometheusText(await response.text());
}

describe("worker metrics", () => {
  it("serves /metrics that moves as files are discovered, ingested and failed", async () => {
    const w = (world = await createWorld());
    const events = new PipelineEvents();
    metrics = new MetricsServer({
      port: 0,
      events,
      databaseUrl: env.databaseUrl,
      dbSchema: w.schema,
      redisUrl: env.redisUrl,
      queuePrefix: w.prefix,
      // Where no API serves it; counted afresh at each scrape here, to follow the files as they move.
      fileTotals: true,
      fileTotalsMaxAgeMs: 0,
      logger: createLogger({ name: "metrics-test", level: "silent" }),
    });
    await metrics.start();
    const url = metrics.url ?? "";
    const healthz = await fetch(`${url}/healthz`);
    expect([healthz.status, await healthz.json()]).toEqual([200, { status: "ok" }]);

    let bytes = 0;
    for (let i = 0; i < 4; i++) {
      const content = jsonRows(i * 10, 3);
      bytes += Buffer.byteLength(content);
      await w.file(`ok-${i}.json`, content);
    }
    await w.file("corrupt.json", `{"id": 1, "v": "fine"}\n{"id": 2, "v": \n`);
    await w.file("notes.txt", "listed, not matched\n");
    const ingestion = await w.ingestion();

    const before = await scrape(url);
    expect(sampleValue(before, "lakeferry_files_settled_total")).toBeUndefined();
    expect(sampleValue(before, "lakeferry_files")).toBeUndefined();
    expect(sampleValue(before, "lakeferry_queue_jobs", { queue: "lakeferry-ingest", state: "waiting" })).toBe(
      0,
    );
    expect(sampleValue(before, "process_cpu_user_seconds_total")).toBeGreaterThan(0);

    // Discovered before any worker runs: the jobs wait, and the oldest one ages.
    const run = await discoverFiles({ ...w, events }, ingestion);
    const waiting = await scrape(url);
    expect(
      sampleValue(waiting, "lakeferry_queue_jobs", { queue: "lakeferry-ingest", state: "waiting" }),
    ).toBe(5);
    expect(
      sampleValue(waiting, "lakeferry_queue_oldest_waiting_seconds", { queue: "lakeferry-ingest" }),
    ).toBeGreaterThan(0);
    expect(sampleValue(waiting, "lakeferry_files", { ingestion: "orders", status: "PENDING" })).toBe(5);
    expect(sampleValue(waiting, "lakeferry_discovery_objects_listed_total", { ingestion: "orders" })).toBe(6);
    expect(sampleValue(waiting, "lakeferry_discovery_files_registered_total", { ingestion: "orders" })).toBe(
      5,
    );
    expect(sampleValue(waiting, "lakeferry_discovery_duration_seconds_count", { ingestion: "orders" })).toBe(
      1,
    );

    await w.worker({ events, batch: { maxWaitMs: 1_000 } });
    expect(await waitForRun(w, run.run.id, { timeoutMs: 60_000 })).toEqual({
      total: 5,
      settled: 5,
      failed: 1,
    });

    const after = await eventually("the settled files counted", async () => {
      const m = await scrape(url);
      const failed = sampleValue(m, "lakeferry_files_settled_total", {
        ingestion: "orders",
        status: "FAILED",
      });
      return failed === 1 ? m : undefined;
    });
    const orders = { ingestion: "orders" };
    expect(sampleValue(after, "lakeferry_files_settled_total", { ...orders, status: "SUCCESS" })).toBe(4);
    expect(
      sampleValue(after, "lakeferry_file_duration_seconds_count", { ...orders, status: "SUCCESS" }),
    ).toBe(4);
    expect(sampleValue(after, "lakeferry_bytes_ingested_total", orders)).toBe(bytes);
    expect(sampleValue(after, "lakeferry_records_ingested_total", orders)).toBe(12);
    expect(
      sampleValue(after, "lakeferry_batch_duration_seconds_count", { ...orders, outcome: "committed" }),
    ).toBeGreaterThanOrEqual(1);
    expect(sampleValue(after, "lakeferry_batch_files_sum", { ...orders, outcome: "committed" })).toBe(4);
    const sparkErrors = after.get("lakeferry_spark_errors_total")?.samples ?? [];
    expect(sparkErrors.reduce((sum, s) => sum + s.value, 0)).toBeGreaterThanOrEqual(1);
    expect(sparkErrors.map((s) => s.labels.class).join()).toMatch(/MALFORMED|FAILED_READ/);
    expect(sampleValue(after, "lakeferry_breaker_open", { queue: "lakeferry-ingest" })).toBe(0);
    expect(sampleValue(after, "lakeferry_breaker_open", { queue: "lakeferry-submit" })).toBe(0);
    expect(sampleValue(after, "lakeferry_files", { ...orders, status: "SUCCESS" })).toBe(4);
    expect(sampleValue(after, "lakeferry_files", { ...orders, status: "FAILED" })).toBe(1);
    expect(sampleValue(after, "lakeferry_files", { ...orders, status: "PENDING" })).toBeUndefined();
    expect(sampleValue(after, "lakeferry_queue_jobs", { queue: "lakeferry-ingest", state: "waiting" })).toBe(
      0,
    );
    expect(sampleValue(after, "lakeferry_queue_oldest_waiting_seconds", { queue: "lakeferry-ingest" })).toBe(
      0,
    );
    expect(sampleValue(after, "lakeferry_metrics_read_errors_total")).toBeUndefined();
    // No label anywhere carries a file's path.
    for (const family of after.values()) {
      for (const sample of family.samples) {
        for (const value of Object.values(sample.labels)) expect(value).not.toContain(w.dir);
      }
    }
  });

  it("leaves files by status to the API unless told: a worker's scrape does not count them", async () => {
    const w = (world = await createWorld());
    await w.file("a.json", jsonRows(0, 1));
    await discoverFiles(w, await w.ingestion());
    metrics = new MetricsServer({
      port: 0,
      events: new PipelineEvents(),
      databaseUrl: env.databaseUrl,
      dbSchema: w.schema,
      redisUrl: env.redisUrl,
      queuePrefix: w.prefix,
      logger: createLogger({ name: "metrics-test", level: "silent" }),
    });
    await metrics.start();
    const m = await scrape(metrics.url ?? "");
    expect(m.has("lakeferry_files")).toBe(false);
    expect(sampleValue(m, "lakeferry_queue_jobs", { queue: "lakeferry-ingest", state: "waiting" })).toBe(1);
  });
});
