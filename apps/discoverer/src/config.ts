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
  stateRetentionVars,
  stateVars,
  checkSparkTransport,
  accessPolicyVars,
} from "@lakeferry/app-kit";

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/** The discoverer's environment: every variable it reads, with its default. */
export const DiscovererEnv = z.object({
  // Connections (Postgres, and Redis, which holds the discovery schedules) and isolation.
  ...stateVars,
  ...isolationVars,
  ...accessPolicyVars,
  /**
   * Spark Connect, optional: when set, this discoverer also runs the table maintenance jobs the
   * ingestions' `maintenance:` schedules fire (one at a time). Unset: they wait for a discoverer with Spark.
   */
  SPARK_REMOTE: optionalConnectionVars.SPARK_REMOTE,
  LAKEFERRY_ALLOW_INSECURE_SPARK: optionalConnectionVars.LAKEFERRY_ALLOW_INSECURE_SPARK,

  // Work.
  /** Discovery passes this process runs at once. Default 2. */
  LAKEFERRY_DISCOVERY_CONCURRENCY: intVar(2, 1),

  // State retention: a discoverer with SPARK_REMOTE prunes on this schedule (one prune across the fleet).
  ...stateRetentionVars,
  /**
   * Hours between scheduled prunes across the fleet (`lakeferry prune`'s work, run by one discoverer with
   * SPARK_REMOTE at a time); 0 schedules none. Default 24.
   */
  LAKEFERRY_PRUNE_INTERVAL_HOURS: intVar(24, 0),

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
  /**
   * Scheduled state pruning (with sparkRemote): retention and interval in ms (interval 0: none), archive table.
   */
  statePrune: { retentionMs: number; everyMs: number; archiveTable: string };
  shutdownTimeoutMs: number;
  /** Where `/metrics` and `/healthz` are served; undefined when LAKEFERRY_METRICS_PORT is unset. */
  metrics: { port: number; host: string } | undefined;
  logLevel: LogLevel;
}

/** Reads the discoverer's settings from `env`; throws InvalidInputError naming each bad variable. */
export function parseDiscovererConfig(env: Record<string, string | undefined>): DiscovererConfig {
  const e = parseEnv(DiscovererEnv, env);
  checkSparkTransport(e.SPARK_REMOTE, e.LAKEFERRY_ALLOW_INSECURE_SPARK);
  return {
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    sparkRemote: e.SPARK_REMOTE,
    dbSchema: e.LAKEFERRY_DB_SCHEMA,
    queuePrefix: e.LAKEFERRY_QUEUE_PREFIX,
    concurrency: e.LAKEFERRY_DISCOVERY_CONCURRENCY,
    statePrune: {
      retentionMs: e.LAKEFERRY_STATE_RETENTION_DAYS * DAY_MS,
      everyMs: e.LAKEFERRY_PRUNE_INTERVAL_HOURS * HOUR_MS,
      archiveTable: e.LAKEFERRY_STATE_ARCHIVE_TABLE,
    },
    shutdownTimeoutMs: e.LAKEFERRY_SHUTDOWN_TIMEOUT_MS,
    metrics:
      e.LAKEFERRY_METRICS_PORT === undefined
        ? undefined
        : { port: e.LAKEFERRY_METRICS_PORT, host: e.LAKEFERRY_METRICS_HOST },
    logLevel: e.LAKEFERRY_LOG_LEVEL,
  };
}
