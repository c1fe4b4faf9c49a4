import { z } from "zod";
import type { LogLevel } from "@lakeferry/core";
import {
  intVar,
  LISTEN_HOST,
  logLevelVar,
  nameVar,
  optionalPortVar,
  parseEnv,
  QUEUE_PREFIX,
  SCHEMA_NAME,
  urlVar,
} from "@lakeferry/app-kit";

/** The discoverer's environment: every variable it reads, with its default. */
export const DiscovererEnv = z.object({
  // Connections.
  /** Postgres holding lakeferry's state. */
  DATABASE_URL: urlVar(["postgres", "postgresql"], "postgresql://user:password@host:5432/lakeferry"),
  /** Redis carrying the BullMQ queues and the discovery schedules. */
  REDIS_URL: urlVar(["redis", "rediss"], "redis://host:6379"),

  // Isolation.
  /** Postgres schema of lakeferry's tables. Default `public`. */
  LAKEFERRY_DB_SCHEMA: nameVar(SCHEMA_NAME, "a Postgres identifier such as lakeferry_prod", "public"),
  /** BullMQ key prefix. Default `lakeferry`. */
  LAKEFERRY_QUEUE_PREFIX: nameVar(QUEUE_PREFIX, "letters, digits, _ . : or -", "lakeferry"),

  // Work.
  /** Discovery passes this process runs at once. Default 2. */
  LAKEFERRY_DISCOVERY_CONCURRENCY: intVar(2, 1),

  // Metrics.
  /** Port serving Prometheus `/metrics` and `/healthz`. Unset: no metrics endpoint. */
  LAKEFERRY_METRICS_PORT: optionalPortVar(),
  /** Interface the metrics endpoint listens on. Default 127.0.0.1 (set 0.0.0.0 in a pod for Prometheus). */
  LAKEFERRY_METRICS_HOST: nameVar(LISTEN_HOST, "a host name or IP address such as 0.0.0.0", "127.0.0.1"),

  // Lifecycle and logs.
  /** On SIGTERM, how long a running discovery pass may take before it is aborted (ms). Default 25 s. */
  LAKEFERRY_SHUTDOWN_TIMEOUT_MS: intVar(25_000, 0),
  /** Lowest log level written (JSON lines on stderr). Default `info`. */
  LAKEFERRY_LOG_LEVEL: logLevelVar("info"),
});

/** The discoverer's settings. */
export interface DiscovererConfig {
  databaseUrl: string;
  redisUrl: string;
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
