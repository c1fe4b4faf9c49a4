import { z } from "zod";
import type { LogLevel } from "@lakeferry/core";
import {
  intVar,
  isolationVars,
  logVars,
  metricsVars,
  optionalConnectionVars,
  parseEnv,
  shutdownTimeoutVar,
  stateVars,
} from "@lakeferry/app-kit";

/** The discoverer's environment: every variable it reads, with its default. */
export const DiscovererEnv = z.object({
  // Connections (Postgres, and Redis, which holds the discovery schedules) and isolation.
  ...stateVars,
  ...isolationVars,
  /**
   * Spark Connect, optional: when set, this discoverer also runs the table maintenance jobs the
   * ingestions' `maintenance:` schedules fire (one at a time). Unset: they wait for a discoverer with Spark.
   */
  SPARK_REMOTE: optionalConnectionVars.SPARK_REMOTE,

  // Work.
  /** Discovery passes this process runs at once. Default 2. */
  LAKEFERRY_DISCOVERY_CONCURRENCY: intVar(2, 1),

  // Metrics.
  ...metricsVars,

  // Lifecycle and logs.
  /** On SIGTERM, how long a running discovery pass may take before it is aborted (ms). Default 25 s. */
  LAKEFERRY_SHUTDOWN_TIMEOUT_MS: shutdownTimeoutVar(),
  ...logVars("info"),
});

/** The discoverer's settings. */
export interface DiscovererConfig {
  databaseUrl: string;
  redisUrl: string;
  /** Where table maintenance runs; undefined: this discoverer runs none. */
  sparkRemote: string | undefined;
  dbSchema: string;
  queuePrefix: string;
  concurrency: number;
  shutdownTimeoutMs: number;
  /** Where `/metrics` and `/healthz` are served; undefined when LAKEFERRY_METRICS_PORT is unset. */
  metrics: { port: number; host: string } | undefined;
  logLevel: LogLevel;
}

/** Reads the discoverer's settings from `env`; throws InvalidInputError naming each bad variable. */
export function parseDiscovererConfig(env: Record<string, string | undefined>): DiscovererConfig {
  const e = parseEnv(DiscovererEnv, env);
  return {
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    sparkRemote: e.SPARK_REMOTE,
    dbSchema: e.LAKEFERRY_DB_SCHEMA,
    queuePrefix: e.LAKEFERRY_QUEUE_PREFIX,
    concurrency: e.LAKEFERRY_DISCOVERY_CONCURRENCY,
    shutdownTimeoutMs: e.LAKEFERRY_SHUTDOWN_TIMEOUT_MS,
    metrics:
      e.LAKEFERRY_METRICS_PORT === undefined
        ? undefined
        : { port: e.LAKEFERRY_METRICS_PORT, host: e.LAKEFERRY_METRICS_HOST },
    logLevel: e.LAKEFERRY_LOG_LEVEL,
  };
}
