import { createLogger } from "@lakeferry/core";
import { runServed } from "@lakeferry/metrics";
import { DiscovererRuntime, PipelineEvents } from "@lakeferry/pipeline";
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
    dbPoolMax: config.dbPoolMax,
    queuePrefix: config.queuePrefix,
    concurrency: config.concurrency,
    statePrune: config.statePrune,
    ...(config.sparkRemote === undefined ? {} : { sparkRemote: config.sparkRemote }),
    logger,
    events,
    storeOptions: () => ({ env: options.env }),
  });
  logger.info(
    {
      schema: config.dbSchema,
      prefix: config.queuePrefix,
      concurrency: config.concurrency,
      maintenance: config.sparkRemote !== undefined,
      pruneEveryHours:
        config.sparkRemote !== undefined && config.statePrune.everyMs > 0
          ? config.statePrune.everyMs / 3_600_000
          : null,
    },
    "starting discoverer",
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
  logger.info("discoverer ready");
  await stopped;
  logger.flush();
}
