import { createLogger } from "@lakeferry/core";
import { MetricsServer, type HealthStatus } from "@lakeferry/metrics";
import { DiscovererRuntime, PipelineEvents } from "@lakeferry/pipeline";
import { stopOnSignals } from "@lakeferry/app-kit";
import { parseDiscovererConfig } from "./config.ts";

export interface RunDiscovererOptions {
  /** The environment to read settings from (the entry point passes `process.env`). */
  env: Record<string, string | undefined>;
}

/**
 * Runs a discoverer until SIGTERM/SIGINT: keeps each enabled ingestion's cron schedule in BullMQ and runs
 * the discovery passes it fires (any number of discoverers may run; each firing goes to one of them).
 * Resolves once stopped cleanly.
 */
export async function runDiscoverer(options: RunDiscovererOptions): Promise<void> {
  const config = parseDiscovererConfig(options.env);
  const logger = createLogger({ name: "discoverer", level: config.logLevel });
  const events = new PipelineEvents({
    onListenerError: (err) => logger.warn({ err }, "pipeline event listener failed"),
  });
  const runtime = new DiscovererRuntime({
    databaseUrl: config.databaseUrl,
    redisUrl: config.redisUrl,
    dbSchema: config.dbSchema,
    queuePrefix: config.queuePrefix,
    concurrency: config.concurrency,
    logger,
    events,
    storeOptions: () => ({ env: options.env }),
  });
  logger.info(
    { schema: config.dbSchema, prefix: config.queuePrefix, concurrency: config.concurrency },
    "starting discoverer",
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
  logger.info("discoverer ready");
  await stopped;
  logger.flush();
}
