import { createLogger } from "@lakeferry/core";
import { DiscovererRuntime } from "@lakeferry/pipeline";
import { stopOnSignals } from "@lakeferry/worker-app/stop-on-signals";
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
  const runtime = new DiscovererRuntime({
    databaseUrl: config.databaseUrl,
    redisUrl: config.redisUrl,
    dbSchema: config.dbSchema,
    queuePrefix: config.queuePrefix,
    concurrency: config.concurrency,
    logger,
    storeOptions: () => ({ env: options.env }),
  });
  logger.info(
    { schema: config.dbSchema, prefix: config.queuePrefix, concurrency: config.concurrency },
    "starting discoverer",
  );
  const stopped = stopOnSignals(runtime, { timeoutMs: config.shutdownTimeoutMs, logger });
  await runtime.start();
  logger.info("discoverer ready");
  await stopped;
  logger.flush();
}
