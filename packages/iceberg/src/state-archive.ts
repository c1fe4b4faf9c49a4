import type { ExecutionOptions, LocalColumn, SparkConnectClient } from "@lakeferry/spark-connect";
import { parseTableName } from "./write-batch.ts";

/** Where pruned state goes by default: `lake.lakeferry.state_archive`. */
export const DEFAULT_STATE_ARCHIVE_TABLE = "lake.lakeferry.state_archive";

/** One row of lakeferry's state archived before it is deleted from Postgres. */
export interface StateArchiveRow {
  /** The Postgres table it came from (`file_attempts`, `runs`, …). */
  sourceTable: string;
  /** Its primary key there, as text: a row archived twice has the same table and key. */
  rowKey: string;
  ingestionId: number;
  /** When the row's story ended (an attempt finished, a batch resolved, …): the archive's time partition. */
  rowTime: Date;
  /** The whole row as JSON. */
  rowJson: string;
}

/** The archive's columns, as sent and as created. */
const COLUMNS: readonly LocalColumn[] = [
  { name: "source_table", type: "string" },
  { name: "row_key", type: "string" },
  { name: "ingestion_id", type: "long" },
  { name: "row_time", type: "timestamp" },
  { name: "row_json", type: "string" },
  { name: "prune_id", type: "string" },
  { name: "archived_at", type: "timestamp" },
];

/**
 * Creates the archive table (and its namespace) unless it exists: the columns above, partitioned by source
 * table and month of `row_time`. A row's fields are read with Spark's JSON functions, e.g.
 * `get_json_object(row_json, '$.error_message')`.
 */
export async function ensureStateArchive(
  spark: SparkConnectClient,
  table: string,
  options?: ExecutionOptions,
): Promise<void> {
  const name = parseTableName(table);
  await spark.sqlCommand(
    `CREATE NAMESPACE IF NOT EXISTS \`${name.catalog}\`.\`${name.namespace}\``,
    undefined,
    options,
  );
  await spark.sqlCommand(
    `CREATE TABLE IF NOT EXISTS ${name.quoted} (
       source_table STRING COMMENT 'the Postgres table the row came from',
       row_key STRING COMMENT 'its primary key there, as text (file_versions: file_id/version; write_batch_files: batch_id/file_id)',
       ingestion_id BIGINT,
       row_time TIMESTAMP COMMENT 'when the row settled: attempt finished, version processed, batch resolved, run finished',
       row_json STRING COMMENT 'the whole row as JSON',
       prune_id STRING COMMENT 'the prune that archived it',
       archived_at TIMESTAMP)
     USING iceberg
     PARTITIONED BY (source_table, months(row_time))
     TBLPROPERTIES ('format-version' = '2', 'write.metadata.delete-after-commit.enabled' = 'true')`,
    undefined,
    options,
  );
}

/**
 * Appends rows to the archive in one commit whose snapshot summary carries `lakeferry.prune-id`. Keep a call
 * to a few MB of rows (see SparkConnectClient.createDataFrame).
 */
export async function appendToStateArchive(
  spark: SparkConnectClient,
  table: string,
  input: { pruneId: string; rows: readonly StateArchiveRow[] },
  options?: ExecutionOptions,
): Promise<void> {
  parseTableName(table);
  if (input.rows.length === 0) return;
  const archivedAt = new Date();
  const rows = input.rows.map((row) => ({
    source_table: row.sourceTable,
    row_key: row.rowKey,
    ingestion_id: row.ingestionId,
    row_time: row.rowTime,
    row_json: row.rowJson,
    prune_id: input.pruneId,
    archived_at: archivedAt,
  }));
  await spark
    .createDataFrame(rows, COLUMNS)
    .writeTo(table)
    .option("snapshot-property.lakeferry.prune-id", input.pruneId)
    .append(options);
}
