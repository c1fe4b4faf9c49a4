import { createLogger } from "@lakeferry/core";
import { MetricsServer, type HealthStatus } from "@lakeferry/metrics";
import { PipelineEvents, WorkerRuntime } from "@lakeferry/pipeline";
import { parseWorkerConfig } from "./config.ts";
import { stopOnSignals } from "@lakeferry/app-kit";

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
    queuePrefix: config.queuePrefix,
    concurrency,
    batch: config.batch,
    oneWriterPerTable: config.oneWriterPerTable,
    submitConcurrency: config.submitConcurrency,
    leaseMs: config.leaseMs,
    reconcileIntervalMs: config.reconcileIntervalMs,
    batchGraceMs: config.batchGraceMs,
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
  let health: HealthStatus = { ok: false, reason: "starting" };
  const metrics = config.metrics
    ? new MetricsServer({
        ...config.metrics,
        events,
        databaseUrl: config.databaseUrl,
        dbSchema: config.dbSchema,
        redisUrl: config.redisUrl,
        queuePrefix: config.queuePrefix,
        health: () => health,
        logger,
      })
    : undefined;
  // A port that cannot be opened stops the worker before it takes any job.
  await metrics?.start();
  const stopped = stopOnSignals(
    {
      close: async (closeOptions) => {
        health = { ok: false, reason: "stopping" };
        await runtime.close(closeOptions);
        await metrics?.close();
      },
    },
    { timeoutMs: config.shutdownTimeoutMs, logger },
  );
  try {
    await runtime.start();
  } catch (error) {
    await metrics?.close();
    throw error;
  }
  health = { ok: true };
  logger.info({ worker: runtime.workerId }, "worker ready");
  await stopped;
  logger.flush();
}
