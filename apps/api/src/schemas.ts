/**
 * Every request and response shape of the API as zod schemas. Requests are validated with them, and the
 * OpenAPI document is generated from them (see openapi.ts), so the two cannot drift apart. Named schemas
 * are registered in `requestSchemas` / `responseSchemas` and appear in the document's components.
 */
import { z } from "zod";
import { FILE_STATUSES } from "@lakeferry/db";
import { IngestionSpec as IngestionSpecSchema } from "@lakeferry/pipeline";
import { Problem } from "./problem.ts";

/** Named schemas of request bodies (converted as their input type). */
export const requestSchemas = z.registry<{ id: string }>();
/** Named schemas of response bodies (converted as their output type). */
export const responseSchemas = z.registry<{ id: string }>();

/** The most paths one submission may carry. */
export const MAX_FILES_PER_SUBMISSION = 5_000;
/** The most file ids one retry may name. */
export const MAX_FILES_PER_RETRY = 5_000;

const dateTime = () => z.iso.datetime({ offset: true });
const id = (what: string) =>
  z.coerce
    .number({ error: "must be a whole number" })
    .int({ error: "must be a whole number" })
    .positive({ error: "must be at least 1" })
    .max(Number.MAX_SAFE_INTEGER, { error: "is too large" })
    .describe(what);

// ---------------------------------------------------------------- path and query parameters

export const IngestionParams = z.strictObject({
  name: z.string().min(1).max(100).describe("The ingestion's name"),
});
export const FileParams = z.strictObject({ id: id("The file's id") });
export const RunParams = z.strictObject({ id: id("The run's id") });

export const FileStatus = z.enum(FILE_STATUSES as [string, ...string[]]);

export const ListFilesQuery = z.strictObject({
  status: z
    .string()
    .transform((value) => value.toUpperCase())
    .pipe(FileStatus)
    .optional()
    .describe(`Only files in this status (${FILE_STATUSES.join(", ")})`),
  run: id("Only files whose current version this run registered").optional(),
  since: dateTime()
    .transform((value) => new Date(value))
    .optional()
    .describe("Only files whose record changed at or after this moment (ISO 8601 with a time zone)"),
  pathPrefix: z
    .string()
    .min(1)
    .max(4096)
    .optional()
    .describe("Only files whose path starts with this: a full URI, or a path relative to the source"),
  limit: z.coerce
    .number({ error: "must be a whole number" })
    .int({ error: "must be a whole number" })
    .min(1, { error: "must be at least 1" })
    .max(1000, { error: "must be at most 1000" })
    .default(100)
    .describe("At most this many files (1–1000, default 100)"),
  cursor: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,40}$/, { error: "is not a cursor this API returned (take `next` of a page)" })
    .optional()
    .describe("Where the page starts: `next` of the previous page"),
});

export const ListRunsQuery = z.strictObject({
  limit: z.coerce
    .number({ error: "must be a whole number" })
    .int({ error: "must be a whole number" })
    .min(1, { error: "must be at least 1" })
    .max(1000, { error: "must be at most 1000" })
    .default(20)
    .describe("At most this many runs, newest first (1–1000, default 20)"),
});

export const RunReportQuery = z.strictObject({
  failures: z.coerce
    .number({ error: "must be a whole number" })
    .int({ error: "must be a whole number" })
    .min(0, { error: "must be at least 0" })
    .max(10_000, { error: "must be at most 10000" })
    .default(1000)
    .describe("List at most this many FAILED files (0–10000, default 1000; totals count them all)"),
});

// ---------------------------------------------------------------- request bodies

/** An ingestion as `lakeferry ingestion apply` reads it (YAML there, JSON here): the very same schema. */
export const IngestionSpec = IngestionSpecSchema;
requestSchemas.add(IngestionSpec, { id: "IngestionSpec" });

export const SubmitFilesRequest = z
  .strictObject({
    requestId: z
      .string()
      .min(1)
      .max(200)
      .regex(/^[\x21-\x7e]+$/, { error: "must be printable ASCII without spaces" })
      .optional()
      .describe(
        "The producer's id for this request: sending the same request again (after a timeout, say) " +
          "gets the first answer and registers nothing twice",
      ),
    files: z
      .array(
        z.strictObject({
          path: z
            .string()
            .min(1, { error: "must not be empty" })
            .max(4096)
            .describe("A URI inside the ingestion's source, or a path relative to it"),
          size: z
            .number()
            .int()
            .min(0)
            .optional()
            .describe(
              "The object's size in bytes, if the producer knows it (lakeferry reads it from storage)",
            ),
        }),
      )
      .min(1, { error: "give at least one file" })
      .max(MAX_FILES_PER_SUBMISSION, { error: `at most ${MAX_FILES_PER_SUBMISSION} files per request` }),
  })
  .describe("Paths that landed, handed to the pipeline");
requestSchemas.add(SubmitFilesRequest, { id: "SubmitFilesRequest" });

export const DiscoverRequest = z
  .strictObject({
    full: z
      .boolean()
      .optional()
      .describe("List the whole source, ignoring the incremental listing's cursor (default false)"),
  })
  .describe("Options of a discovery pass (the body may be left out)");
requestSchemas.add(DiscoverRequest, { id: "DiscoverRequest" });

export const RetryRequest = z
  .strictObject({
    fileIds: z
      .array(id("A file id"))
      .min(1, { error: "give at least one file id, or leave fileIds out to retry every FAILED file" })
      .max(MAX_FILES_PER_RETRY, { error: `at most ${MAX_FILES_PER_RETRY} file ids per request` })
      .optional()
      .describe("These files (FAILED or SKIPPED); left out: every FAILED file of the ingestion"),
  })
  .describe("Which files to queue again (the body may be left out: every FAILED file)");
requestSchemas.add(RetryRequest, { id: "RetryRequest" });

// ---------------------------------------------------------------- response bodies

export { Problem };
responseSchemas.add(Problem, { id: "Problem" });

export const Health = z.object({ status: z.literal("ok") });
responseSchemas.add(Health, { id: "Health" });

const Check = z.object({
  status: z.enum(["ok", "error"]),
  ms: z.number().describe("How long the check took, in milliseconds"),
  error: z.string().optional().describe("Why the check failed"),
});
export const Readiness = z.object({
  status: z.enum(["ok", "unavailable"]),
  checks: z.object({ postgres: Check, redis: Check, spark: Check }),
});
responseSchemas.add(Readiness, { id: "Readiness" });

const StatusCounts = z
  .object(Object.fromEntries(FILE_STATUSES.map((status) => [status, z.number().int()])))
  .describe("Files per status");

export const Ingestion = z.object({
  id: z.number().int(),
  name: z.string(),
  sourceUri: z.string(),
  format: z.string(),
  readerOptions: z.record(z.string(), z.string()),
  schemaDdl: z.string().nullable(),
  schemaEvolution: z
    .enum(["addNewColumns", "rescue", "failOnNewColumns", "none"])
    .nullable()
    .describe("What files' columns may do to the table; null: addNewColumns without schemaDdl, none with it"),
  schemaHints: z.string().nullable().describe("Types for inferred columns (Spark DDL)"),
  rescuedDataColumn: z
    .string()
    .nullable()
    .describe("The rescued-data column under rescue; null: _rescued_data"),
  glob: z.string().nullable(),
  targetTable: z.string(),
  schedule: z.string().nullable(),
  maxAttempts: z.number().int(),
  backoffMs: z.number().int(),
  modifiedPolicy: z.enum(["ignore", "append", "replace"]),
  listing: z.unknown().describe("Listing settings (credential references, never secrets)"),
  listingCursor: z.unknown().describe("Where incremental listing resumes"),
  enabled: z.boolean(),
  createdAt: dateTime(),
  updatedAt: dateTime(),
});
responseSchemas.add(Ingestion, { id: "Ingestion" });

export const IngestionList = z.object({ ingestions: z.array(Ingestion) });
responseSchemas.add(IngestionList, { id: "IngestionList" });

export const IngestionDetail = Ingestion.extend({ files: StatusCounts });
responseSchemas.add(IngestionDetail, { id: "IngestionDetail" });

export const SchemaChange = z.object({
  column: z.string(),
  type: z.string().describe("Spark's type, as inferred (with the ingestion's schemaHints)"),
  files: z.number().int().describe("Files skipped for it (SKIPPED, SCHEMA_CHANGE_PENDING)"),
  exampleFile: z.string(),
  firstSeenAt: dateTime(),
  lastSeenAt: dateTime(),
  approvedAt: dateTime().nullable().describe("Null while it waits for approval"),
});
export const SchemaChangeList = z.object({
  table: z.string(),
  changes: z.array(SchemaChange).describe("Pending first"),
});
responseSchemas.add(SchemaChangeList, { id: "SchemaChangeList" });
export const SchemaChangeQuery = z.strictObject({
  all: z.enum(["true", "false"]).optional().describe("Approved changes too"),
});
export const SchemaApproval = z.object({
  approved: z.array(z.object({ column: z.string(), type: z.string() })),
  added: z.array(z.string()).describe("Columns added to the table (those it had already are left)"),
  requeued: z.number().int().describe("Files skipped for new columns, queued again"),
});
responseSchemas.add(SchemaApproval, { id: "SchemaApproval" });

export const Run = z.object({
  id: z.number().int(),
  ingestionId: z.number().int(),
  trigger: z.enum(["schedule", "manual", "upstream"]),
  status: z.enum(["running", "succeeded", "failed"]),
  startedAt: dateTime(),
  finishedAt: dateTime().nullable(),
  filesFound: z.number().int(),
  filesNew: z.number().int(),
  filesModified: z.number().int(),
  filesRefused: z.number().int(),
  errorType: z.string().nullable(),
  errorMessage: z.string().nullable(),
});
responseSchemas.add(Run, { id: "Run" });

export const RunList = z.object({ runs: z.array(Run) });
responseSchemas.add(RunList, { id: "RunList" });

export const RunDetail = Run.extend({
  ingestion: z.string().describe("The ingestion's name"),
  progress: z
    .object({ total: z.number().int(), settled: z.number().int(), failed: z.number().int() })
    .describe("The file versions this run registered: how many, how many settled, how many FAILED"),
});
responseSchemas.add(RunDetail, { id: "RunDetail" });

export const DiscoveryResult = z.object({
  run: Run,
  found: z.number().int().describe("Objects listed that match the ingestion's pattern"),
  created: z.number().int().describe("Files registered for the first time"),
  modified: z.number().int().describe("Known files that changed and became a new version"),
  enqueued: z.number().int().describe("Ingest jobs added"),
  listCalls: z.number().int().describe("List requests made to storage"),
  error: z
    .object({ type: z.string(), message: z.string() })
    .optional()
    .describe("Why the pass stopped early (a storage problem: missing bucket, access denied)"),
});
responseSchemas.add(DiscoveryResult, { id: "DiscoveryResult" });

const FailureKind = z.enum([
  "malformed_file",
  "schema_mismatch",
  "out_of_memory",
  "file_missing",
  "permission_denied",
  "spark_unavailable",
  "storage_unavailable",
  "file_too_large",
  "unsupported_compression",
  "bad_records",
  "other",
]);

export const RunReport = z.object({
  run: Run,
  ingestion: z.object({ id: z.number().int(), name: z.string(), sourceUri: z.string() }),
  totals: z.object({
    files: z.number().int(),
    success: z.number().int(),
    failed: z.number().int(),
    skipped: z.number().int(),
    pending: z.number().int(),
    records: z.number().int().describe("Rows the SUCCESS files put in the table"),
  }),
  errorTypes: z
    .array(
      z.object({
        errorType: z.string().nullable(),
        kind: FailureKind,
        files: z.number().int(),
        action: z.string().describe("What to do about these files"),
      }),
    )
    .describe("FAILED files grouped by error type, most files first"),
  failures: z
    .array(
      z.object({
        fileId: z.number().int(),
        path: z.string(),
        version: z.number().int(),
        errorType: z.string().nullable(),
        error: z.string().describe("The error's first line"),
        kind: FailureKind,
        attempts: z.number().int(),
      }),
    )
    .describe("FAILED files in id order (at most `failures` of them)"),
  refused: z
    .array(z.object({ path: z.string(), reason: z.string() }))
    .describe("Submitted paths the run did not register, with the reason (at most `failures` of them)"),
});
responseSchemas.add(RunReport, { id: "RunReport" });

export const File = z.object({
  id: z.number().int(),
  ingestionId: z.number().int(),
  filePath: z.string().describe("The file's URI, as listed"),
  fileSize: z.number().int(),
  modifiedAt: dateTime(),
  etag: z.string(),
  version: z.number().int(),
  status: FileStatus,
  discoveredAt: dateTime(),
  processingStartedAt: dateTime().nullable(),
  processedAt: dateTime().nullable(),
  recordsIngested: z.number().int().nullable().describe("Rows loaded into the table"),
  recordsParsed: z
    .number()
    .int()
    .nullable()
    .describe(
      "Records parsed, good and bad; null when the read does not count bad records (onError abortFile, Parquet, ORC, Avro, text)",
    ),
  recordsRejected: z
    .number()
    .int()
    .nullable()
    .describe(
      "Bad records: set apart in <table>__rejected (SUCCESS), or the reason the file was SKIPPED or FAILED (BAD_RECORDS)",
    ),
  firstError: z
    .string()
    .nullable()
    .describe("The file's first bad record: `record N: what is wrong: its text`"),
  bytesRead: z.number().int().nullable(),
  processingDurationMs: z.number().int().nullable(),
  errorMessage: z.string().nullable(),
  errorType: z.string().nullable(),
  retryCount: z.number().int(),
  attempts: z.number().int(),
  runId: z.number().int().nullable(),
  leaseOwner: z.string().nullable(),
  leaseExpiresAt: dateTime().nullable(),
  batchId: z.string().nullable(),
  snapshotId: z.string().nullable().describe("Iceberg snapshot id (64 bits, as a decimal string)"),
  updatedAt: dateTime(),
});
responseSchemas.add(File, { id: "File" });

export const FilePage = z.object({
  files: z.array(File),
  next: z.string().nullable().describe("Cursor of the next page; null on the last page"),
});
responseSchemas.add(FilePage, { id: "FilePage" });

export const FileVersion = z.object({
  fileId: z.number().int(),
  version: z.number().int(),
  etag: z.string(),
  fileSize: z.number().int(),
  modifiedAt: dateTime(),
  seenAt: dateTime(),
  runId: z.number().int().nullable(),
  status: FileStatus,
  recordsIngested: z.number().int().nullable(),
  recordsParsed: z.number().int().nullable(),
  recordsRejected: z.number().int().nullable(),
  firstError: z.string().nullable(),
  snapshotId: z.string().nullable(),
  batchId: z.string().nullable(),
  processedAt: dateTime().nullable(),
  errorType: z.string().nullable(),
  errorMessage: z.string().nullable(),
});

export const FileAttempt = z.object({
  id: z.number().int(),
  fileId: z.number().int(),
  version: z.number().int(),
  attempt: z.number().int(),
  worker: z.string(),
  batchId: z.string().nullable(),
  startedAt: dateTime(),
  finishedAt: dateTime().nullable(),
  outcome: z.enum(["SUCCESS", "FAILED", "RETRY", "LOST", "SKIPPED"]).nullable(),
  errorType: z.string().nullable(),
  errorMessage: z.string().nullable(),
  recordsIngested: z.number().int().nullable(),
  durationMs: z.number().int().nullable(),
});

export const FileDetail = File.extend({
  ingestion: z.string().describe("The ingestion's name"),
  versions: z.array(FileVersion).describe("Every version seen, oldest first"),
  attempts: z.array(FileAttempt).describe("Every claim of every version, oldest first"),
});
responseSchemas.add(FileDetail, { id: "FileDetail" });

export const SubmitResult = z.object({
  path: z.string().describe("The path as given"),
  status: z.enum(["accepted", "already_known", "refused"]),
  uri: z.string().optional().describe("The file's URI (accepted and already known paths)"),
  fileId: z.number().int().optional(),
  version: z.number().int().optional(),
  fileStatus: FileStatus.optional().describe("Where an already known file stands"),
  reason: z.string().optional().describe("Why the path was refused, and what to fix"),
});

export const SubmitFilesResponse = z.object({
  requestId: z.string().optional(),
  run: z.number().int().describe("The upstream run that registered the accepted files"),
  accepted: z.number().int().describe("Paths registered (new files or new versions) and queued"),
  alreadyKnown: z.number().int().describe("Paths already registered, unchanged: nothing new to do"),
  refused: z.number().int(),
  results: z.array(SubmitResult).describe("One result per path given, in order"),
});
responseSchemas.add(SubmitFilesResponse, { id: "SubmitFilesResponse" });

/** The 422 answer to a submission whose every path was refused: a problem with the per-path results. */
export const SubmitFilesRefused = Problem.extend({
  run: z.number().int(),
  results: z.array(SubmitResult),
});
responseSchemas.add(SubmitFilesRefused, { id: "SubmitFilesRefused" });

const FileRef = z.object({ id: z.number().int(), version: z.number().int(), path: z.string() });

export const RetryResponse = z.object({
  queued: z.number().int().describe("Files put back to PENDING"),
  enqueued: z.number().int().describe("Ingest jobs added for them"),
  files: z.array(FileRef),
  refused: z.array(z.object({ fileId: z.number().int(), reason: z.string() })),
});
responseSchemas.add(RetryResponse, { id: "RetryResponse" });

/** The 422 answer to a retry whose every named file was refused. */
export const RetryRefused = Problem.extend({
  refused: z.array(z.object({ fileId: z.number().int(), reason: z.string() })),
});
responseSchemas.add(RetryRefused, { id: "RetryRefused" });
