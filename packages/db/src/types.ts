/** Where a tracked file stands; see the FileStatus enum in prisma/schema.prisma. */
export type FileStatus = "PENDING" | "PROCESSING" | "SUCCESS" | "FAILED" | "SKIPPED";

/** Every file status, in lifecycle order. */
export const FILE_STATUSES: readonly FileStatus[] = ["PENDING", "PROCESSING", "SUCCESS", "FAILED", "SKIPPED"];

/**
 * What registering a file whose etag or size changed does: `ignore` records the new version as SKIPPED
 * (history only); `append` and `replace` make it a new PENDING version (how its rows reach the table is
 * the pipeline's business).
 */
export type ModifiedPolicy = "ignore" | "append" | "replace";

export const MODIFIED_POLICIES: readonly ModifiedPolicy[] = ["ignore", "append", "replace"];

export type RunTrigger = "schedule" | "manual" | "upstream";

export const RUN_TRIGGERS: readonly RunTrigger[] = ["schedule", "manual", "upstream"];

export type RunStatus = "running" | "succeeded" | "failed";

export type AttemptOutcome = "SUCCESS" | "FAILED" | "RETRY" | "LOST" | "SKIPPED";

export type BatchState = "OPEN" | "PUBLISHING" | "COMMITTED" | "FAILED" | "ABANDONED";

export const SCHEMA_EVOLUTIONS = ["addNewColumns", "rescue", "failOnNewColumns", "none"] as const;
export type SchemaEvolution = (typeof SCHEMA_EVOLUTIONS)[number];

/** An ingestion's definition, as created or replaced by {@link upsertIngestion}. */
export interface IngestionInput {
  /** Unique, stable name (the API and CLI address ingestions by it). */
  name: string;
  /** Where files land, e.g. `s3://bucket/prefix/`. */
  sourceUri: string;
  /** Spark data source format: `csv`, `json`, `parquet`, … */
  format: string;
  /** Spark reader options. */
  readerOptions: Record<string, string>;
  /** Spark DDL schema (`id INT, name STRING`); null = infer. */
  schemaDdl: string | null;
  /**
   * What a file's columns may do to the table: `addNewColumns` (they are added), `rescue` (the table's
   * columns never change; what does not fit goes to the rescued-data column), `failOnNewColumns` (files with
   * new columns wait for approval) or `none` (the table's columns never change); absent or null:
   * addNewColumns without `schemaDdl`, none with it.
   */
  schemaEvolution?: SchemaEvolution | null;
  /** Types for inferred columns (Spark DDL, `id BIGINT, price DOUBLE`); absent or null: none. */
  schemaHints?: string | null;
  /** The rescued-data column under `rescue`; absent or null: `_rescued_data`. */
  rescuedDataColumn?: string | null;
  /** Glob matched against paths under `sourceUri`; null = every file. */
  glob: string | null;
  /** Iceberg table, e.g. `lake.db.events`. */
  targetTable: string;
  /** Cron expression; null = runs only when triggered manually or by upstream. */
  schedule: string | null;
  /** Attempts a file gets before it is FAILED for good (≥ 1). */
  maxAttempts: number;
  /** Base delay between attempts, in milliseconds (≥ 0). */
  backoffMs: number;
  /** Files larger than this many bytes are SKIPPED at claim (`FILE_TOO_LARGE`); absent or null: no limit. */
  maxFileBytes?: number | null;
  /**
   * Files larger than this many bytes are written in batches of their own, with a write deadline that grows
   * with their size; absent or null: the pipeline's default.
   */
  largeFileBytes?: number | null;
  modifiedPolicy: ModifiedPolicy;
  /** Incremental listing settings; stored as JSON, opaque to the database. */
  listing: unknown;
  /** Table maintenance settings; stored as JSON, opaque to the database. Absent or null: the defaults. */
  maintenance?: unknown;
  /** Source cleanup settings (`cleanSource`); stored as JSON, opaque to the database. Absent or null: off. */
  cleanSource?: unknown;
  /**
   * What a malformed record does to its file (`{ onError, maxBadRecords }`); stored as JSON, opaque to the
   * database. Absent or null: abortFile.
   */
  badRecords?: unknown;
  enabled: boolean;
}

export interface Ingestion extends IngestionInput {
  id: number;
  schemaEvolution: SchemaEvolution | null;
  schemaHints: string | null;
  rescuedDataColumn: string | null;
  maxFileBytes: number | null;
  largeFileBytes: number | null;
  /** Where incremental listing resumes; opaque JSON, null until first saved. */
  listingCursor: unknown;
  /** Table maintenance settings as stored (null: the defaults). */
  maintenance: unknown;
  /** Source cleanup settings as stored (null: off). */
  cleanSource: unknown;
  /** The bad-record policy as stored (null: abortFile). */
  badRecords: unknown;
  createdAt: Date;
  updatedAt: Date;
}

/** One discovery pass over an ingestion's source. */
export interface Run {
  id: number;
  ingestionId: number;
  trigger: RunTrigger;
  status: RunStatus;
  startedAt: Date;
  finishedAt: Date | null;
  filesFound: number;
  filesNew: number;
  filesModified: number;
  /** Submitted paths that were not registered; {@link listRefusals} gives each with its reason. */
  filesRefused: number;
  errorType: string | null;
  errorMessage: string | null;
}

/** An object as a storage listing reports it. */
export interface ListedFile {
  /** Full URI; becomes the file's path (unique per ingestion). */
  uri: string;
  /** Bytes. */
  size: number;
  etag: string;
  modifiedAt: Date;
}

/** Names one version of a tracked file. */
export interface FileRef {
  id: number;
  version: number;
  path: string;
}

/** A file version this worker now holds a lease on. */
export interface ClaimedFile {
  id: number;
  ingestionId: number;
  version: number;
  path: string;
  size: number;
  /** 1-based number of this claim of this version. */
  attempt: number;
  /**
   * The batch an earlier attempt of this version was written in, if that batch is OPEN, PUBLISHING or
   * COMMITTED: resolve it before writing again (an OPEN one is abandoned, a PUBLISHING one published).
   * Null when no earlier attempt can make the file's rows visible.
   */
  previousBatchId: string | null;
}

/** How a claimed file version's attempt ended. */
export interface Outcome {
  id: number;
  version: number;
  /**
   * SUCCESS and FAILED settle the version; SKIPPED settles it unread (refused before writing, e.g. a file
   * above the ingestion's `maxFileBytes`: `lakeferry retry` takes it again); PENDING hands it back for a
   * later retry.
   */
  status: "SUCCESS" | "FAILED" | "SKIPPED" | "PENDING";
  recordsIngested?: number;
  /** Records parsed (good and bad), when the read counted bad records (onError continue or skipFile). */
  recordsParsed?: number;
  /** Records set apart in the quarantine table (SUCCESS) or that made the file SKIPPED or FAILED. */
  recordsRejected?: number;
  /** The file's first bad record: `record N: what is wrong: its text`. Kept on a SUCCESS too. */
  firstError?: string;
  bytesRead?: number;
  /** Iceberg snapshot id (a 64-bit integer, as a decimal string). Defaults to the batch's. */
  snapshotId?: string;
  /** The write batch the file went out in. Defaults to the resolved batch's id. */
  batchId?: string;
  errorType?: string;
  errorMessage?: string;
  /**
   * Whether a PENDING or FAILED outcome spends one of the file's attempts (counts in retry_count). False
   * for outages of Spark, Postgres, Redis or storage, which are not the file's fault. Default true.
   */
  counted?: boolean;
}

/** A processed_files row: every column, camelCased; bigints as numbers except the snapshot id. */
export interface FileRecord {
  id: number;
  ingestionId: number;
  filePath: string;
  fileSize: number;
  modifiedAt: Date;
  etag: string;
  version: number;
  status: FileStatus;
  discoveredAt: Date;
  processingStartedAt: Date | null;
  processedAt: Date | null;
  /** Rows loaded into the table. */
  recordsIngested: number | null;
  /** Records parsed, good and bad (null when the read did not count bad records: abortFile, Parquet, …). */
  recordsParsed: number | null;
  /** Bad records: set apart in `<table>__rejected`, or the reason the file was SKIPPED or FAILED. */
  recordsRejected: number | null;
  /** The first bad record: `record N: what is wrong: its text`. */
  firstError: string | null;
  bytesRead: number | null;
  processingDurationMs: number | null;
  errorMessage: string | null;
  errorType: string | null;
  retryCount: number;
  attempts: number;
  runId: number | null;
  leaseOwner: string | null;
  leaseExpiresAt: Date | null;
  batchId: string | null;
  /** Iceberg snapshot ids use all 64 bits, so this one stays a decimal string. */
  snapshotId: string | null;
  updatedAt: Date;
}

/** A file_versions row. */
export interface FileVersionRecord {
  fileId: number;
  version: number;
  etag: string;
  fileSize: number;
  modifiedAt: Date;
  seenAt: Date;
  runId: number | null;
  status: FileStatus;
  recordsIngested: number | null;
  recordsParsed: number | null;
  recordsRejected: number | null;
  firstError: string | null;
  snapshotId: string | null;
  batchId: string | null;
  processedAt: Date | null;
  errorType: string | null;
  errorMessage: string | null;
}

/** A file_attempts row. */
export interface FileAttemptRecord {
  id: number;
  fileId: number;
  version: number;
  attempt: number;
  worker: string;
  batchId: string | null;
  startedAt: Date;
  finishedAt: Date | null;
  /** Null while the attempt is in flight. */
  outcome: AttemptOutcome | null;
  errorType: string | null;
  errorMessage: string | null;
  recordsIngested: number | null;
  durationMs: number | null;
}

/** A write batch not yet known to have committed or failed. */
export interface UnresolvedBatch {
  id: string;
  ingestionId: number;
  table: string;
  worker: string;
  createdAt: Date;
  files: { id: number; version: number }[];
}
