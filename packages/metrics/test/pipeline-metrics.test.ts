import { PipelineEvents } from "@lakeferry/pipeline";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { attachPipelineMetrics } from "../src/index.ts";
import { parsePrometheusText, sampleValue } from "./prometheus-text.ts";

async function scrape(registry: Registry) {
  return parsePrometheusText(await registry.metrics());
}

describe("attachPipelineMetrics", () => {
  it("counts settled files by ingestion and status, with bytes and rows of successes only", async () => {
    const registry = new Registry();
    const events = new PipelineEvents();
    attachPipelineMetrics(registry, events);
    const file = { ingestion: "orders", fileId: 1, durationSeconds: 0.4, bytes: 100, records: 7 };
    events.emit("file:settled", { ...file, status: "SUCCESS" });
    events.emit("file:settled", { ...file, fileId: 2, status: "SUCCESS", bytes: 50, records: 3 });
    events.emit("file:settled", { ...file, fileId: 3, status: "retry", records: 0, errorType: "X" });
    events.emit("file:settled", { ...file, ingestion: "clicks", status: "FAILED", durationSeconds: 20 });

    const m = await scrape(registry);
    const settled = (ingestion: string, status: string) =>
      sampleValue(m, "lakeferry_files_settled_total", { ingestion, status });
    expect(settled("orders", "SUCCESS")).toBe(2);
    expect(settled("orders", "retry")).toBe(1);
    expect(settled("clicks", "FAILED")).toBe(1);
    expect(sampleValue(m, "lakeferry_bytes_ingested_total", { ingestion: "orders" })).toBe(150);
    expect(sampleValue(m, "lakeferry_records_ingested_total", { ingestion: "orders" })).toBe(10);
    expect(sampleValue(m, "lakeferry_bytes_ingested_total", { ingestion: "clicks" })).toBeUndefined();
    const duration = { ingestion: "clicks", status: "FAILED" };
    expect(sampleValue(m, "lakeferry_file_duration_seconds_count", duration)).toBe(1);
    expect(sampleValue(m, "lakeferry_file_duration_seconds_bucket", { ...duration, le: "10" })).toBe(0);
    expect(sampleValue(m, "lakeferry_file_duration_seconds_bucket", { ...duration, le: "30" })).toBe(1);
    // No label carries a file's path or id.
    for (const family of m.values()) {
      for (const sample of family.samples) expect(Object.keys(sample.labels)).not.toContain("fileId");
    }
  });

  it("observes batches by outcome, Spark errors by class, the breaker and discovery passes", async () => {
    const registry = new Registry();
    const events = new PipelineEvents();
    attachPipelineMetrics(registry, events);
    const batch = {
      ingestion: "orders",
      batchId: "b",
      files: 40,
      bytes: 1,
      records: 9,
      durationSeconds: 1.5,
    };
    events.emit("batch:finished", { ...batch, outcome: "committed" });
    events.emit("batch:finished", { ...batch, outcome: "fenced", files: 1, durationSeconds: 0.1 });
    events.emit("spark:error", { errorClass: "MALFORMED_RECORD_IN_PARSING", outage: false });
    events.emit("spark:error", { errorClass: "MALFORMED_RECORD_IN_PARSING", outage: false });
    events.emit("spark:error", { errorClass: "SPARK_UNAVAILABLE", outage: true });
    const discovery = {
      ingestion: "orders",
      runId: 1,
      durationSeconds: 2,
      objectsListed: 30,
      registered: 12,
    };
    events.emit("discovery:finished", discovery);
    events.emit("discovery:finished", { ...discovery, runId: 2, objectsListed: 31, registered: 0 });

    let m = await scrape(registry);
    const committed = { ingestion: "orders", outcome: "committed" };
    expect(sampleValue(m, "lakeferry_batch_duration_seconds_count", committed)).toBe(1);
    expect(sampleValue(m, "lakeferry_batch_duration_seconds_sum", committed)).toBe(1.5);
    expect(sampleValue(m, "lakeferry_batch_files_bucket", { ...committed, le: "25" })).toBe(0);
    expect(sampleValue(m, "lakeferry_batch_files_bucket", { ...committed, le: "50" })).toBe(1);
    expect(
      sampleValue(m, "lakeferry_batch_duration_seconds_count", { ingestion: "orders", outcome: "fenced" }),
    ).toBe(1);
    expect(sampleValue(m, "lakeferry_spark_errors_total", { class: "MALFORMED_RECORD_IN_PARSING" })).toBe(2);
    expect(sampleValue(m, "lakeferry_spark_errors_total", { class: "SPARK_UNAVAILABLE" })).toBe(1);
    expect(sampleValue(m, "lakeferry_discovery_objects_listed_total", { ingestion: "orders" })).toBe(61);
    expect(sampleValue(m, "lakeferry_discovery_files_registered_total", { ingestion: "orders" })).toBe(12);
    expect(sampleValue(m, "lakeferry_discovery_duration_seconds_count", { ingestion: "orders" })).toBe(2);
    const ingest = { queue: "lakeferry-ingest" };
    const submit = { queue: "lakeferry-submit" };
    expect(sampleValue(m, "lakeferry_breaker_open", ingest)).toBe(0);
    expect(sampleValue(m, "lakeferry_breaker_open", submit)).toBe(0);

    // Each queue's breaker has its own gauge; an event without a queue is the ingest queue's.
    events.emit("breaker:changed", { state: "open", outage: "spark", pauseMs: 1_000 });
    events.emit("breaker:changed", {
      queue: "lakeferry-submit",
      state: "open",
      outage: "storage",
      pauseMs: 900,
    });
    m = await scrape(registry);
    expect(sampleValue(m, "lakeferry_breaker_open", ingest)).toBe(1);
    expect(sampleValue(m, "lakeferry_breaker_open", submit)).toBe(1);
    events.emit("breaker:changed", {
      queue: "lakeferry-ingest",
      state: "closed",
      outage: "none",
      pauseMs: 0,
    });
    m = await scrape(registry);
    expect(sampleValue(m, "lakeferry_breaker_open", ingest)).toBe(0);
    expect(sampleValue(m, "lakeferry_breaker_open", submit)).toBe(1);
    // Closed because its pause ended with no job left to try storage: 0 as well.
    events.emit("breaker:changed", {
      queue: "lakeferry-submit",
      state: "closed",
      outage: "storage",
      pauseMs: 0,
    });
    m = await scrape(registry);
    expect(sampleValue(m, "lakeferry_breaker_open", submit)).toBe(0);
  });

  it("counts files and batches the reconciler resolved, without durations it did not measure", async () => {
    const registry = new Registry();
    const events = new PipelineEvents();
    attachPipelineMetrics(registry, events);
    const file = { ingestion: "orders", durationSeconds: 0, status: "SUCCESS", recovered: true } as const;
    events.emit("file:settled", { ...file, fileId: 1, bytes: 100, records: 7 });
    events.emit("file:settled", { ...file, fileId: 2, bytes: 20, records: 3 });
    const batch = { ingestion: "orders", durationSeconds: 0, recovered: true, records: 0 };
    events.emit("batch:finished", { ...batch, batchId: "c", outcome: "committed", files: 2, bytes: 120 });
    events.emit("batch:finished", { ...batch, batchId: "a", outcome: "abandoned", files: 3, bytes: 9 });

    const m = await scrape(registry);
    const orders = { ingestion: "orders" };
    expect(sampleValue(m, "lakeferry_files_settled_total", { ...orders, status: "SUCCESS" })).toBe(2);
    expect(sampleValue(m, "lakeferry_bytes_ingested_total", orders)).toBe(120);
    expect(sampleValue(m, "lakeferry_records_ingested_total", orders)).toBe(10);
    expect(
      sampleValue(m, "lakeferry_file_duration_seconds_count", { ...orders, status: "SUCCESS" }),
    ).toBeUndefined();
    expect(sampleValue(m, "lakeferry_batch_files_sum", { ...orders, outcome: "committed" })).toBe(2);
    expect(sampleValue(m, "lakeferry_batch_files_sum", { ...orders, outcome: "abandoned" })).toBe(3);
    expect(
      sampleValue(m, "lakeferry_batch_duration_seconds_count", { ...orders, outcome: "committed" }),
    ).toBeUndefined();
  });

  it("stops counting once detached", async () => {
    const registry = new Registry();
    const events = new PipelineEvents();
    const detach = attachPipelineMetrics(registry, events);
    const event = { ingestion: "o", fileId: 1, durationSeconds: 1, bytes: 1, records: 1 } as const;
    events.emit("file:settled", { ...event, status: "SUCCESS" });
    detach();
    events.emit("file:settled", { ...event, status: "SUCCESS" });
    const m = await scrape(registry);
    expect(sampleValue(m, "lakeferry_files_settled_total", { ingestion: "o", status: "SUCCESS" })).toBe(1);
  });
});
