import { z } from "zod";

/** How to reach the Redis that carries lakeferry's queues. */
export interface QueueConnectionOptions {
  /** A `redis://` or `rediss://` URL, e.g. `REDIS_URL`. */
  redisUrl: string;
  /**
   * BullMQ key prefix: every key of every queue starts with `<prefix>:`. Default `"lakeferry"`. Tests use a
   * random prefix each, so they never see one another's jobs.
   */
  prefix?: string;
}

/** The default BullMQ key prefix. */
export const DEFAULT_PREFIX = "lakeferry";

/** Queue of file ingestion jobs: one job per file version. */
export const INGEST_QUEUE = "lakeferry-ingest";

/** Queue of discovery jobs: list an ingestion's source and register the files that are new. */
export const DISCOVER_QUEUE = "lakeferry-discover";

/**
 * Queue of path submissions from upstream systems: the one queue meant for producers outside lakeferry (any
 * BullMQ client, any language, no access to Postgres). Jobs named {@link SUBMIT_JOB_NAME} carry
 * {@link SubmitJobData}; a worker registers the paths under the same rules as the HTTP API.
 */
export const SUBMIT_QUEUE = "lakeferry-submit";

/**
 * Queue of maintenance jobs: table maintenance (snapshot expiry, compaction, manifest rewrite; each waits for
 * its table's write lease) and source cleanup, fired by each ingestion's schedules and run by discoverers
 * given Spark.
 */
export const MAINTAIN_QUEUE = "lakeferry-maintain";

/** Every queue lakeferry runs, in the order dashboards show them. */
export const QUEUE_NAMES: readonly string[] = [INGEST_QUEUE, DISCOVER_QUEUE, SUBMIT_QUEUE, MAINTAIN_QUEUE];

/** The payload of an ingest job. Everything else about the file lives in its Postgres row. */
export const IngestJobData = z.object({
  /** `processed_files.id`. */
  fileId: z.number().int().positive(),
  /** The file's version (a changed object at the same path is a new version). */
  version: z.number().int().positive(),
  /** The ingestion the file belongs to. */
  ingestionId: z.number().int().positive(),
});
export type IngestJobData = z.infer<typeof IngestJobData>;

/**
 * The id of the one BullMQ job that may exist for a file version. Deriving it from the file row makes
 * enqueueing the same file twice a no-op.
 */
export function ingestJobId(data: { fileId: number; version: number }): string {
  return `file-${data.fileId}-v${data.version}`;
}

/** The payload of a discovery job. */
export const DiscoverJobData = z.object({
  ingestionId: z.number().int().positive(),
  /** `schedule` when fired by the ingestion's cron, `manual` when asked for (API, CLI). */
  trigger: z.enum(["schedule", "manual"]),
});
export type DiscoverJobData = z.infer<typeof DiscoverJobData>;

/** The payload of a maintenance job: one task on one ingestion's table, or the cleanup of its source. */
export const MaintainJobData = z.object({
  ingestionId: z.number().int().positive(),
  task: z.enum(["expireSnapshots", "compaction", "rewriteManifests", "cleanSource"]),
  /** `schedule` when fired by the task's cron, `manual` when asked for (CLI). */
  trigger: z.enum(["schedule", "manual"]),
});
export type MaintainJobData = z.infer<typeof MaintainJobData>;

/** The BullMQ job name of maintenance jobs (shown in Bull Board). */
export const MAINTAIN_JOB_NAME = "maintain-table";

/**
 * Retry policy of maintenance jobs: a run that failed (Spark away, a commit conflict that Iceberg's own
 * retries did not settle) is tried again a few times, then waits for the next firing.
 */
export const MAINTAIN_RETRY: RetryPolicy = { attempts: 3, backoffMs: 60_000 };

/** Paths one submission may carry, as through the HTTP API. */
export const MAX_SUBMITTED_PATHS = 5_000;

/** The longest path a submission may name, in characters (as through the HTTP API). */
export const MAX_PATH_LENGTH = 4_096;

/** The BullMQ job name of path submissions. */
export const SUBMIT_JOB_NAME = "submit-paths";

/**
 * The payload of a path submission: `{"ingestion": NAME, "paths": [...]}`, each path a URI inside the
 * ingestion's source or a path relative to it. Other fields are refused, so that a misspelt one is not
 * silently ignored.
 */
export const SubmitJobData = z
  .object({
    ingestion: z.string().min(1),
    paths: z.array(z.string().min(1).max(MAX_PATH_LENGTH)).min(1).max(MAX_SUBMITTED_PATHS),
  })
  .strict();
export type SubmitJobData = z.infer<typeof SubmitJobData>;

/** How often and how patiently a job is retried after a retryable failure. */
export interface RetryPolicy {
  /** Total attempts including the first; 1 means never retry. */
  attempts: number;
  /** Delay before the first retry in milliseconds; each later retry waits twice as long as the one before. */
  backoffMs: number;
}

/** Retry policy of discovery jobs (the next scheduled firing retries anyway, so it stays short). */
export const DISCOVER_RETRY: RetryPolicy = { attempts: 3, backoffMs: 5_000 };

/** The BullMQ job name of ingest jobs (shown in Bull Board). */
export const INGEST_JOB_NAME = "ingest-file";

/** The BullMQ job name of discovery jobs (shown in Bull Board). */
export const DISCOVER_JOB_NAME = "discover";

/**
 * Finished jobs kept in Redis for Bull Board. Postgres keeps every file's full history, so Redis only
 * keeps a recent window.
 */
export const KEEP_COMPLETED = { count: 1_000 } as const;
export const KEEP_FAILED = { count: 10_000 } as const;
