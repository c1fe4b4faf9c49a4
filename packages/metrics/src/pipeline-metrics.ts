import type { PipelineEvents } from "@lakeferry/pipeline";
import { INGEST_QUEUE, SUBMIT_QUEUE } from "@lakeferry/queue";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

/** Buckets of a file's claim-to-settle time, in seconds. */
const FILE_SECONDS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
/** Buckets of a batch write's time, in seconds. */
const BATCH_SECONDS = [0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300];
/** Buckets of a batch's file count. */
const BATCH_FILES = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000];
/** Buckets of a discovery pass's time, in seconds. */
const DISCOVERY_SECONDS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/**
 * Registers the pipeline's event metrics on `registry` and keeps them up to date from `events`; returns a
 * function that stops listening (the metrics stay registered). Call once per registry (prom-client refuses
 * a metric name registered twice). Labels are ingestion names, statuses, outcomes and Spark error
 * classes: never file paths.
 *
 * - `lakeferry_files_settled_total{ingestion,status}`: file attempts settled (`SUCCESS`, `FAILED`,
 *   `SKIPPED`, `retry`);
 * - `lakeferry_file_duration_seconds{ingestion,status}`: claim to settle (files the reconciler settled from
 *   a batch whose writer was gone are counted above but have no duration here);
 * - `lakeferry_bytes_ingested_total{ingestion}`, `lakeferry_records_ingested_total{ingestion}`: of files
 *   settled SUCCESS;
 * - `lakeferry_batch_duration_seconds{ingestion,outcome}`, `lakeferry_batch_files{ingestion,outcome}`:
 *   each batch write attempt (`committed`, `failed`, `fenced`, `split`, `in-doubt`), and each batch the
 *   reconciler resolved (`committed` or `abandoned`; files only, no duration);
 * - `lakeferry_spark_errors_total{class}`: failed Spark calls of batches, by Spark error class or code;
 * - `lakeferry_breaker_open{queue}`: 1 while this worker's outage breaker keeps the queue (`lakeferry-ingest`,
 *   `lakeferry-submit`) paused, else 0;
 * - `lakeferry_discovery_duration_seconds{ingestion}`, `lakeferry_discovery_objects_listed_total{ingestion}`,
 *   `lakeferry_discovery_files_registered_total{ingestion}`: discovery passes.
 */
export function attachPipelineMetrics(registry: Registry, events: PipelineEvents): () => void {
  const registers = [registry];
  const filesSettled = new Counter({
    name: "lakeferry_files_settled_total",
    help: "File attempts settled, by ingestion and status (SUCCESS, FAILED, SKIPPED, retry).",
    labelNames: ["ingestion", "status"] as const,
    registers,
  });
  const fileDuration = new Histogram({
    name: "lakeferry_file_duration_seconds",
    help: "Time from a worker's claim of a file to its settling, in seconds.",
    labelNames: ["ingestion", "status"] as const,
    buckets: FILE_SECONDS,
    registers,
  });
  const bytesIngested = new Counter({
    name: "lakeferry_bytes_ingested_total",
    help: "Bytes of files ingested successfully.",
    labelNames: ["ingestion"] as const,
    registers,
  });
  const recordsIngested = new Counter({
    name: "lakeferry_records_ingested_total",
    help: "Rows written to Iceberg from files ingested successfully.",
    labelNames: ["ingestion"] as const,
    registers,
  });
  const batchDuration = new Histogram({
    name: "lakeferry_batch_duration_seconds",
    help: "Time of a batch write attempt, by outcome (committed, failed, fenced, split, in-doubt), in seconds.",
    labelNames: ["ingestion", "outcome"] as const,
    buckets: BATCH_SECONDS,
    registers,
  });
  const batchFiles = new Histogram({
    name: "lakeferry_batch_files",
    help: "Files in a batch write attempt, or in a batch the reconciler resolved (committed, abandoned), by outcome.",
    labelNames: ["ingestion", "outcome"] as const,
    buckets: BATCH_FILES,
    registers,
  });
  const sparkErrors = new Counter({
    name: "lakeferry_spark_errors_total",
    help: "Failed Spark Connect calls of batch writes, by Spark error class (or error code).",
    labelNames: ["class"] as const,
    registers,
  });
  const breakerOpen = new Gauge({
    name: "lakeferry_breaker_open",
    help: "1 while this worker's outage breaker keeps the queue paused (a dependency is down), else 0.",
    labelNames: ["queue"] as const,
    registers,
  });
  for (const queue of [INGEST_QUEUE, SUBMIT_QUEUE]) breakerOpen.set({ queue }, 0);
  const discoveryDuration = new Histogram({
    name: "lakeferry_discovery_duration_seconds",
    help: "Time of a discovery pass, in seconds.",
    labelNames: ["ingestion"] as const,
    buckets: DISCOVERY_SECONDS,
    registers,
  });
  const objectsListed = new Counter({
    name: "lakeferry_discovery_objects_listed_total",
    help: "Objects returned by storage listings of discovery passes.",
    labelNames: ["ingestion"] as const,
    registers,
  });
  const filesRegistered = new Counter({
    name: "lakeferry_discovery_files_registered_total",
    help: "Files registered by discovery passes (new files and new versions).",
    labelNames: ["ingestion"] as const,
    registers,
  });

  const detach = [
    events.on("file:settled", (event) => {
      const labels = { ingestion: event.ingestion, status: event.status };
      filesSettled.inc(labels);
      if (event.recovered !== true) fileDuration.observe(labels, event.durationSeconds);
      if (event.status === "SUCCESS") {
        bytesIngested.inc({ ingestion: event.ingestion }, event.bytes);
        recordsIngested.inc({ ingestion: event.ingestion }, event.records);
      }
    }),
    events.on("batch:finished", (event) => {
      const labels = { ingestion: event.ingestion, outcome: event.outcome };
      if (event.recovered !== true) batchDuration.observe(labels, event.durationSeconds);
      batchFiles.observe(labels, event.files);
    }),
    events.on("spark:error", (event) => sparkErrors.inc({ class: event.errorClass })),
    events.on("breaker:changed", (event) =>
      breakerOpen.set({ queue: event.queue ?? INGEST_QUEUE }, event.state === "open" ? 1 : 0),
    ),
    events.on("discovery:finished", (event) => {
      const labels = { ingestion: event.ingestion };
      discoveryDuration.observe(labels, event.durationSeconds);
      objectsListed.inc(labels, event.objectsListed);
      filesRegistered.inc(labels, event.registered);
    }),
  ];
  return () => detach.forEach((off) => off());
}
