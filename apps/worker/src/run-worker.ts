import { createLogger } from "@lakeferry/core";
import { WorkerRuntime } from "@lakeferry/pipeline";
import { parseWorkerConfig } from "./config.ts";
import { stopOnSignals } from "./stop-on-signals.ts";

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
  const runtime = new WorkerRuntime({
    databaseUrl: config.databaseUrl,
    redisUrl: config.redisUrl,
    sparkRemote: config.sparkRemote,
    dbSchema: config.dbSchema,
    queuePrefix: config.queuePrefix,
    concurrency,
    batch: config.batch,
    oneWriterPerTable: config.oneWriterPerTable,
    leaseMs: config.leaseMs,
    reconcileIntervalMs: config.reconcileIntervalMs,
    batchGraceMs: config.batchGraceMs,
    ...(config.workerId !== undefined ? { workerId: config.workerId } : {}),
    logger,
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
  const stopped = stopOnSignals(runtime, { timeoutMs: config.shutdownTimeoutMs, logger });
  await runtime.start();
  logger.info({ worker: runtime.workerId }, "worker ready");
  await stopped;
  logger.flush();
}
