/**
 * What kind of trouble failed a file, which decides what an operator should do about it (the seed
 * design's error-recovery report suggests one action per kind):
 * - `malformed_file`: the file does not parse (corrupt, truncated, not in the declared format);
 * - `schema_mismatch`: it parses, but its columns or values do not fit the declared schema or the table
 *   (a value Spark cannot convert to the declared type, `CANNOT_PARSE_*`, counts here);
 * - `out_of_memory`: Spark ran out of memory reading or writing it;
 * - `file_missing`: the object was gone when it was read;
 * - `permission_denied`: storage or Spark refused our credentials;
 * - `spark_unavailable`: Spark failed or timed out on every attempt (transient, but the attempts ran out);
 * - `storage_unavailable`: the object store failed or throttled on every attempt;
 * - `file_too_large`: the file is larger than the ingestion's `maxFileBytes` and was SKIPPED unread;
 * - `unsupported_compression`: Spark here cannot decompress the file (zstd JSON, CSV or text on a server
 *   without lakeferry's zstd codec);
 * - `bad_records`: the file has more bad records than its ingestion's `maxBadRecords` (onError continue:
 *   FAILED; skipFile: SKIPPED);
 * - `other`: anything else.
 */
export type FailureKind =
  | "malformed_file"
  | "schema_mismatch"
  | "out_of_memory"
  | "file_missing"
  | "permission_denied"
  | "spark_unavailable"
  | "storage_unavailable"
  | "file_too_large"
  | "unsupported_compression"
  | "bad_records"
  | "other";

/** Error type of a file SKIPPED at claim for being larger than its ingestion's `maxFileBytes`. */
export const FILE_TOO_LARGE = "FILE_TOO_LARGE";

/** Error type of a file SKIPPED (onError: skipFile) or FAILED (continue) for more bad records than allowed. */
export const BAD_RECORDS = "BAD_RECORDS";

/** Error type of a file FAILED at claim because Spark cannot decompress it (see `unsupported_compression`). */
export const UNSUPPORTED_COMPRESSION = "UNSUPPORTED_COMPRESSION";

/**
 * What an error message says when a JVM ran out of memory: Spark reports a lost executor or task with the
 * JVM's words and no error class of its own, so the message decides. A Postgres regular expression (`~`).
 */
export const OUT_OF_MEMORY_MESSAGE = "OutOfMemoryError|Java heap space|GC overhead limit exceeded";

/**
 * Kinds by the recorded error type: Spark's error class (innermost of the cause chain) when Spark gave
 * one, else the code of lakeferry's error (`SPARK_*` from spark-connect, `STORAGE_*` from storage). First
 * match wins: a missing file's class starts like other unreadable files'.
 */
const KIND_BY_TYPE: readonly (readonly [FailureKind, RegExp])[] = [
  ["out_of_memory", /OUT_OF_MEMORY|UNABLE_TO_ACQUIRE_MEMORY/],
  ["file_too_large", new RegExp(`^${FILE_TOO_LARGE}$`)],
  ["unsupported_compression", new RegExp(`^${UNSUPPORTED_COMPRESSION}$`)],
  ["bad_records", new RegExp(`^${BAD_RECORDS}$`)],
  ["file_missing", /^(STORAGE_NOT_FOUND|PATH_NOT_FOUND|FAILED_READ_FILE\.FILE_NOT_EXIST)/],
  ["permission_denied", /^(STORAGE_ACCESS_DENIED|SPARK_REFUSED|INSUFFICIENT_PERMISSIONS)/],
  [
    "schema_mismatch",
    /^(SCHEMA_MISMATCH|CANNOT_PARSE_|CAST_INVALID_INPUT|CAST_OVERFLOW|INCOMPATIBLE_DATA_FOR_TABLE|NOT_NULL_ASSERT_VIOLATION|NOT_NULL_CONSTRAINT_VIOLATION|FAILED_READ_FILE\.PARQUET_COLUMN_DATA_TYPE_MISMATCH|DATATYPE_MISMATCH|UNRESOLVED_COLUMN|SPARK_ANALYSIS)/,
  ],
  [
    "malformed_file",
    /^(MALFORMED_|INVALID_JSON_|UNSUPPORTED_FILE_COMPRESSION|FAILED_READ_FILE|SPARK_BAD_INPUT)/,
  ],
  ["spark_unavailable", /^SPARK_/],
  ["storage_unavailable", /^STORAGE_(UNAVAILABLE|THROTTLED)/],
];

/** The kind of a failure with this error type whose message says (or not) that memory ran out. */
export function failureKind(errorType: string | null, outOfMemoryMessage: boolean): FailureKind {
  if (outOfMemoryMessage) return "out_of_memory";
  return KIND_BY_TYPE.find(([, pattern]) => pattern.test(errorType ?? ""))?.[0] ?? "other";
}

/**
 * What to do about failures of this kind, as one sentence naming the `lakeferry` commands to run for
 * the ingestion called `ingestion` (`retry --failed` queues every FAILED file of it again).
 */
export function failureAction(kind: FailureKind, ingestion: string): string {
  const retry = `\`lakeferry retry ${ingestion} --failed\``;
  switch (kind) {
    case "malformed_file":
      return `the file does not parse: fix or replace it at the source, then ${retry} (or remove it and leave it FAILED)`;
    case "schema_mismatch":
      return `the file does not fit the schema or the table: correct the file, or change the ingestion's \`schema\` (\`lakeferry ingestion apply\`) or evolve the table (\`lakeferry sql "ALTER TABLE …"\`), then ${retry}`;
    case "out_of_memory":
      return `Spark ran out of memory on the file: increase executor memory (spark.executor.memory on the Spark server) and ${retry}, or split the file, or leave it FAILED`;
    case "file_missing":
      return `the file was gone from the source when read: check the source; if it is back, ${retry}`;
    case "permission_denied":
      return `access was refused: fix the credentials (the ingestion's \`credentials\`, or the Spark server's storage settings), then ${retry}`;
    case "spark_unavailable":
      return `Spark failed or timed out on every attempt (retried automatically until the attempts ran out): check the Spark Connect server (SPARK_REMOTE) and its logs, then ${retry}`;
    case "storage_unavailable":
      return `the object store failed or throttled on every attempt: check the store, then ${retry}`;
    case "file_too_large":
      return `the file is larger than the ingestion's \`maxFileBytes\` and was skipped unread: to ingest it, raise \`maxFileBytes\` (\`lakeferry ingestion apply\`), giving Spark more memory first (spark.executor.memory, spark.driver.memory on a local server) if the file is read whole (gzip, bzip2, multiLine JSON), then \`lakeferry retry ${ingestion} --file PATH\`; or leave it SKIPPED`;
    case "unsupported_compression":
      return `Spark cannot decompress the file (zstd JSON, CSV or text needs lakeferry's zstd codec on the Spark server): install the codec jar on the Spark server as the README's "Compressed files" says (workers ask again once Spark restarts), then ${retry}; or recompress it as .gz or .bz2 at the source`;
    case "bad_records":
      return `the file has more bad records than the ingestion's \`maxBadRecords\` (its first bad record and counts are on the file: \`lakeferry history ${ingestion} PATH\`): fix the file at the source, or raise \`maxBadRecords\` (\`lakeferry ingestion apply\`), then \`lakeferry retry ${ingestion} --file PATH\``;
    case "other":
      return `read the whole error (\`lakeferry history ${ingestion} PATH --full\`), fix its cause, then ${retry}`;
  }
}
