import { createLogger } from "@lakeferry/core";
import { runServed } from "@lakeferry/metrics";
import { PipelineEvents, WorkerRuntime } from "@lakeferry/pipeline";
import { parseWorkerConfig } from "./config.ts";

export interface RunWorkerOptions {
  /** The environment to read settings from (the entry point passes `process.env`). */
  env: Record<string, string | undefined>;
  /** Overrides LAKEFERRY_WORKER_CONCURRENCY (the CLI's `--concurrency`). */
  concurrency?: number;
}

/**
 * Runs an ingest worker until SIGTERM/SIGINT: takes file jobs from BullMQ, claims the files in Postgres,
 * writes them to Iceberg in group commits and records every outcome; its reconciler recovers files that
 * Redis or a crashed worker lost. Resolves once stopped cleanly.
 */
export async function runWorker(options: RunWorkerOptions): Promise<void> {
  const config = parseWorkerConfig(options.env);
  const concurrency = options.concurrency ?? config.concurrency;
  const logger = createLogger({ name: "worker", level: config.logLevel });
  const events = new PipelineEvents({
    onListenerError: (err) => logger.warn({ err }, "pipeline event listener failed"),
  });
  const runtime = new WorkerRuntime({
    databaseUrl: config.databaseUrl,
    redisUrl: config.redisUrl,
    sparkRemote: config.sparkRemote,
    dbSchema: config.dbSchema,
    dbPoolMax: config.dbPoolMax,
    queuePrefix: config.queuePrefix,
    concurrency,
    batch: config.batch,
    oneWriterPerTable: config.oneWriterPerTable,
    submitConcurrency: config.submitConcurrency,
    leaseMs: config.leaseMs,
    reconcileIntervalMs: config.reconcileIntervalMs,
    batchGraceMs: config.batchGraceMs,
    submissionRetentionMs: config.submissionRetentionMs,
    ...(config.workerId !== undefined ? { workerId: config.workerId } : {}),
    logger,
    events,
    faults: {
      crashAfterClaim: config.faults.includes("crash-after-claim"),
      crashAfterCommit: config.faults.includes("crash-after-commit"),
    },
    storeOptions: () => ({ env: options.env }),
  });
  logger.info(
    {
      worker: runtime.workerId,
      concurrency,
      schema: config.dbSchema,
      prefix: config.queuePrefix,
      ...(config.faults.length > 0 ? { faults: config.faults } : {}),
    },
    "starting worker",
  );
  const { stopped } = await runServed(runtime, {
    metrics: config.metrics,
    events,
    databaseUrl: config.databaseUrl,
    dbSchema: config.dbSchema,
    redisUrl: config.redisUrl,
    queuePrefix: config.queuePrefix,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    logger,
  });
  logger.info({ worker: runtime.workerId }, "worker ready");
  await stopped;
  logger.flush();
}
