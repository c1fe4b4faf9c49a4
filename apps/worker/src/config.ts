import { z } from "zod";
import type { LogLevel } from "@lakeferry/core";
import {
  boolVar,
  intVar,
  isolationVars,
  logVars,
  metricsVars,
  optionalVar,
  parseEnv,
  shutdownTimeoutVar,
  sparkVars,
  stateVars,
  checkSparkTransport,
  accessPolicyVars,
} from "@lakeferry/app-kit";

/** Faults a test can ask a worker to commit (LAKEFERRY_FAULT_INJECTION), never set in production. */
export const FAULTS = ["crash-after-claim", "crash-after-commit"] as const;
export type FaultName = (typeof FAULTS)[number];

const DAY_MS = 24 * 60 * 60 * 1000;

/** The worker's environment: every variable it reads, with its default. */
export const WorkerEnv = z.object({
  // Connections (Spark reads the files and commits to Iceberg) and isolation.
  ...stateVars,
  ...sparkVars,
  ...isolationVars,
  ...accessPolicyVars,

  // Throughput.
  /**
   * Jobs this process works on at once (claimed files waiting for their batch count): also the most files
   * one batch can gather. Default 1000 (bench:vs-streaming).
   */
  LAKEFERRY_WORKER_CONCURRENCY: intVar(1000, 1),
  /** A batch is written once it holds this many files… Default 1000 (bench:vs-streaming). */
  LAKEFERRY_BATCH_MAX_FILES: intVar(1000, 1),
  /** …or this many bytes… Default 1 GiB (bench:vs-streaming). */
  LAKEFERRY_BATCH_MAX_BYTES: intVar(1024 * 1024 * 1024, 1),
  /** …or when its oldest file has waited this long (ms) and its table has no write in flight. Default 250. */
  LAKEFERRY_BATCH_MAX_WAIT_MS: intVar(250, 0),
  /** A write running longer than this (ms) lets the next write of its table start beside it. Default 15 s. */
  LAKEFERRY_BATCH_SLOW_WRITE_MS: intVar(15_000, 1),
  /** One write in flight per table across the fleet (a write lease per table in Postgres). Default true. */
  LAKEFERRY_ONE_WRITER_PER_TABLE: boolVar(true),
  /** Path submissions from the `lakeferry-submit` queue registered at once; 0 takes none. Default 8 (bench:submit). */
  LAKEFERRY_SUBMIT_CONCURRENCY: intVar(8, 0),

  // Recovery.
  /** How long a claim holds a file without renewal (ms); an expired claim can be taken over. Default 60 s. */
  LAKEFERRY_LEASE_MS: intVar(60_000, 1_000),
  /** How often the reconciler re-enqueues lost files and reclaims expired leases (ms). Default 30 s. */
  LAKEFERRY_RECONCILE_INTERVAL_MS: intVar(30_000, 100),
  /** Age after which the reconciler resolves a batch left OPEN by a crashed writer (ms). Default 60 s. */
  LAKEFERRY_BATCH_GRACE_MS: intVar(60_000, 0),
  /**
   * Days the API's records of submissions with a `requestId` are kept (a request sent again within them gets
   * its first answer back); this worker's reconciler deletes older ones. Default 7.
   */
  LAKEFERRY_SUBMISSION_RETENTION_DAYS: intVar(7, 1),
  /** On SIGTERM, how long in-flight batches may take before they are handed back (ms). Default 25 s, inside
   * Kubernetes' 30 s grace period. */
  LAKEFERRY_SHUTDOWN_TIMEOUT_MS: shutdownTimeoutVar(),
  /** Name recorded as the holder of claims and in file attempts. Default `<hostname>-<pid>`. */
  LAKEFERRY_WORKER_ID: optionalVar(),

  // Metrics.
  ...metricsVars,

  // Logs and tests.
  ...logVars("info"),
  /** Test only: comma-separated faults (`crash-after-claim`, `crash-after-commit`): the worker kills itself
   * (SIGKILL) at that point. */
  LAKEFERRY_FAULT_INJECTION: z.preprocess(
    (value) =>
      typeof value === "string"
        ? value
            .split(",")
            .map((part) => part.trim())
            .filter((part) => part !== "")
        : [],
    z.array(z.enum(FAULTS, { error: `must list only ${FAULTS.join(", ")}` })),
  ),
});

/** The worker's settings, grouped. */
export interface WorkerConfig {
  databaseUrl: string;
  redisUrl: string;
  sparkRemote: string;
  dbSchema: string;
  queuePrefix: string;
  concurrency: number;
  batch: { maxFiles: number; maxBytes: number; maxWaitMs: number; slowWriteMs: number };
  oneWriterPerTable: boolean;
  submitConcurrency: number;
  leaseMs: number;
  reconcileIntervalMs: number;
  batchGraceMs: number;
  /** How long submission records are kept (ms), from LAKEFERRY_SUBMISSION_RETENTION_DAYS. */
  submissionRetentionMs: number;
  shutdownTimeoutMs: number;
  workerId: string | undefined;
  /** Where `/metrics` and `/healthz` are served; undefined when LAKEFERRY_METRICS_PORT is unset. */
  metrics: { port: number; host: string } | undefined;
  logLevel: LogLevel;
  faults: FaultName[];
}

/** Reads the worker's settings from `env`; throws InvalidInputError naming each bad variable. */
export function parseWorkerConfig(env: Record<string, string | undefined>): WorkerConfig {
  const e = parseEnv(WorkerEnv, env);
  checkSparkTransport(e.SPARK_REMOTE, e.LAKEFERRY_ALLOW_INSECURE_SPARK);
  return {
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    sparkRemote: e.SPARK_REMOTE,
    dbSchema: e.LAKEFERRY_DB_SCHEMA,
    queuePrefix: e.LAKEFERRY_QUEUE_PREFIX,
    concurrency: e.LAKEFERRY_WORKER_CONCURRENCY,
    submitConcurrency: e.LAKEFERRY_SUBMIT_CONCURRENCY,
    batch: {
      maxFiles: e.LAKEFERRY_BATCH_MAX_FILES,
      maxBytes: e.LAKEFERRY_BATCH_MAX_BYTES,
      maxWaitMs: e.LAKEFERRY_BATCH_MAX_WAIT_MS,
      slowWriteMs: e.LAKEFERRY_BATCH_SLOW_WRITE_MS,
    },
    oneWriterPerTable: e.LAKEFERRY_ONE_WRITER_PER_TABLE,
    leaseMs: e.LAKEFERRY_LEASE_MS,
    reconcileIntervalMs: e.LAKEFERRY_RECONCILE_INTERVAL_MS,
    batchGraceMs: e.LAKEFERRY_BATCH_GRACE_MS,
    submissionRetentionMs: e.LAKEFERRY_SUBMISSION_RETENTION_DAYS * DAY_MS,
    shutdownTimeoutMs: e.LAKEFERRY_SHUTDOWN_TIMEOUT_MS,
    workerId: e.LAKEFERRY_WORKER_ID,
    metrics:
      e.LAKEFERRY_METRICS_PORT === undefined
        ? undefined
        : { port: e.LAKEFERRY_METRICS_PORT, host: e.LAKEFERRY_METRICS_HOST },
    logLevel: e.LAKEFERRY_LOG_LEVEL,
    faults: e.LAKEFERRY_FAULT_INJECTION,
  };
}
