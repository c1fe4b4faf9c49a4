import { LakeferryError } from "@lakeferry/core";
import type { ExecutionOptions, Row, SparkConnectClient } from "@lakeferry/spark-connect";
import { parseTableName, type TableName } from "./write-batch.ts";

/** What `expire_snapshots` removed. */
export interface ExpiryResult {
  deletedDataFiles: number;
  deletedManifestFiles: number;
  deletedManifestLists: number;
}

/** What `rewrite_data_files` did. */
export interface CompactionResult {
  rewrittenDataFiles: number;
  addedDataFiles: number;
  rewrittenBytes: number;
}

/** What `rewrite_manifests` did. */
export interface ManifestRewriteResult {
  rewrittenManifests: number;
  addedManifests: number;
}

/** The live data files of a table's current snapshot. */
export interface DataFileStats {
  files: number;
  bytes: number;
  /** Bytes per file (0 for a table without data files). */
  averageBytes: number;
}

/**
 * Removes snapshots committed before `olderThan`, keeping at least the last `retainLast` of the current
 * lineage (Iceberg's `expire_snapshots`), and the files only they referenced. Staged (write-audit-publish)
 * snapshots are not on the lineage, so `olderThan` alone decides for them: the caller must not pass a moment
 * after the staging of a batch that may still be published.
 */
export async function expireSnapshots(
  spark: SparkConnectClient,
  table: string,
  settings: { olderThan: Date; retainLast: number },
  options?: ExecutionOptions,
): Promise<ExpiryResult> {
  const name = parseTableName(table);
  const retainLast = wholeNumber("retainLast", settings.retainLast, 1);
  // With its zone (Z), the literal names one instant whatever the session's time zone.
  const olderThan = settings.olderThan.toISOString();
  const rows = await spark.sqlCommand(
    `CALL ${procedure(name, "expire_snapshots")}(table => '${identifier(name)}', ` +
      `older_than => TIMESTAMP '${olderThan}', retain_last => ${retainLast})`,
    undefined,
    options,
  );
  const row = rows[0] ?? {};
  return {
    deletedDataFiles: count(row.deleted_data_files_count),
    deletedManifestFiles: count(row.deleted_manifest_files_count),
    deletedManifestLists: count(row.deleted_manifest_lists_count),
  };
}

/**
 * Rewrites small data files into files near `targetFileSizeBytes` (Iceberg's `rewrite_data_files`, bin-pack),
 * in one commit, where a group has at least `minInputFiles` files. The rows, `_source_file` and
 * `_ingested_at` included, are kept as they were: recovery that looks for a batch's rows still finds them.
 */
export async function rewriteDataFiles(
  spark: SparkConnectClient,
  table: string,
  settings: { targetFileSizeBytes: number; minInputFiles: number },
  options?: ExecutionOptions,
): Promise<CompactionResult> {
  const name = parseTableName(table);
  const target = wholeNumber("targetFileSizeBytes", settings.targetFileSizeBytes, 1_048_576);
  const minInputFiles = wholeNumber("minInputFiles", settings.minInputFiles, 2);
  const rows = await spark.sqlCommand(
    `CALL ${procedure(name, "rewrite_data_files")}(table => '${identifier(name)}', strategy => 'binpack', ` +
      `options => map('target-file-size-bytes', '${target}', 'min-input-files', '${minInputFiles}'))`,
    undefined,
    options,
  );
  const row = rows[0] ?? {};
  return {
    rewrittenDataFiles: count(row.rewritten_data_files_count),
    addedDataFiles: count(row.added_data_files_count),
    rewrittenBytes: count(row.rewritten_bytes_count),
  };
}

/** Rewrites the current snapshot's manifests into fewer, clustered ones (Iceberg's `rewrite_manifests`). */
export async function rewriteManifests(
  spark: SparkConnectClient,
  table: string,
  options?: ExecutionOptions,
): Promise<ManifestRewriteResult> {
  const name = parseTableName(table);
  const rows = await spark.sqlCommand(
    `CALL ${procedure(name, "rewrite_manifests")}(table => '${identifier(name)}')`,
    undefined,
    options,
  );
  const row = rows[0] ?? {};
  return {
    rewrittenManifests: count(row.rewritten_manifests_count),
    addedManifests: count(row.added_manifests_count),
  };
}

/** Counts the current snapshot's data files and their bytes (the `files` metadata table). */
export async function dataFileStats(
  spark: SparkConnectClient,
  table: string,
  options?: ExecutionOptions,
): Promise<DataFileStats> {
  const name = parseTableName(table);
  const rows = await spark.sql(
    `SELECT count(*) AS files, coalesce(sum(file_size_in_bytes), 0) AS bytes
       FROM ${name.quoted}.\`data_files\``,
    undefined,
    options,
  );
  const files = count(rows[0]?.files);
  const bytes = count(rows[0]?.bytes);
  return { files, bytes, averageBytes: files === 0 ? 0 : Math.round(bytes / files) };
}

/** `` `catalog`.system.name ``: the procedure of the table's own catalog. */
function procedure(name: TableName, procedureName: string): string {
  return `\`${name.catalog}\`.system.${procedureName}`;
}

/**
 * The table as the procedures' `table` argument (a string literal; Iceberg's CALL parser on Spark 3.5 knows
 * no parameter markers). Its parts are identifiers (parseTableName), so it needs no escaping.
 */
function identifier(name: TableName): string {
  return `\`${name.namespace}\`.\`${name.table}\``;
}

function wholeNumber(field: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new LakeferryError("ICEBERG_BAD_MAINTENANCE_SETTING", `${field} must be a whole number ≥ ${min}`, {
      retryable: false,
    });
  }
  return value;
}

function count(value: Row[string]): number {
  if (value === undefined || value === null) return 0;
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  throw new LakeferryError("ICEBERG_UNEXPECTED_RESULT", `count of unexpected type ${typeof value}`, {
    retryable: false,
  });
}
