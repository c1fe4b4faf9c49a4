import { z } from "zod";
import type { LogLevel } from "@lakeferry/core";
import {
  intVar,
  logLevelVar,
  nameVar,
  parseEnv,
  QUEUE_PREFIX,
  SCHEMA_NAME,
  urlVar,
} from "@lakeferry/worker-app/env-fields";

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
    logLevel: e.LAKEFERRY_LOG_LEVEL,
  };
}
