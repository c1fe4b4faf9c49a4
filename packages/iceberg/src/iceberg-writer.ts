import { LakeferryError, type Logger } from "@lakeferry/core";
import {
  col,
  fn,
  lit,
  SparkConnectError,
  type Column,
  type DataFrame,
  type ExecutionOptions,
  type Row,
  type SparkConnectClient,
} from "@lakeferry/spark-connect";
import { ingestedAtNow, parseMicros, type IngestedAt } from "./ingested-at.ts";
import { planSourceFiles } from "./source-file-column.ts";
import {
  parseTableName,
  validateBatchId,
  validateWriteBatch,
  type TableName,
  type ValidatedBatch,
  type WriteBatch,
} from "./write-batch.ts";

/** What a committed batch produced. */
export interface WriteResult {
  /** The Iceberg snapshot that holds the batch's rows (decimal string: ids are 64-bit). */
  snapshotId: string;
  /** When Iceberg committed that snapshot. */
  committedAt: Date;
  /** Rows committed per file URI as the caller gave it; 0 for a file with no rows. */
  records: Map<string, number>;
  /** True when the batch had been committed before (found by its id) and nothing was written now. */
  alreadyCommitted: boolean;
}

export interface IcebergWriterOptions {
  /** The Spark Connect session that reads the files and commits to Iceberg. */
  spark: SparkConnectClient;
  /**
   * Maps a caller's file URI to the path Spark reads (e.g. `s3://b/k` → `s3a://b/k`). Default: identity.
   * `_source_file` always carries the caller's URI.
   */
  sparkPath?: (uri: string) => string;
  /**
   * Extra table properties for tables this writer creates. Defaults (which these may override):
   * `format-version=2`, `write.metadata.metrics.column._source_file=full`.
   */
  tableProperties?: Record<string, string>;
  /**
   * Keep each source file's rows in data files of their own, so that a later `replace` of a file can drop
   * whole data files (Iceberg's overwrite-by-filter cannot split a data file). Costs one Spark task and
   * at least one data file per source file. Sets `spark.sql.files.openCostInBytes` on the session.
   * Default true; turn off only for tables that never see `replace` (off leaves the session's setting as
   * it is).
   */
  isolateSourceFiles?: boolean;
  /** Debug lines about table creation races. Default: none. */
  logger?: Logger;
}

/** Summary keys written to every snapshot this writer commits. */
export const BATCH_ID_PROPERTY = "lakeferry.batch-id";
export const INGESTED_AT_PROPERTY = "lakeferry.ingested-at";

/** Large enough that Spark never packs two files into one read partition (so never into one data file). */
const ISOLATING_OPEN_COST = String(2 ** 40);

const DEFAULT_TABLE_PROPERTIES: Readonly<Record<string, string>> = {
  "format-version": "2",
  "write.metadata.metrics.column._source_file": "full",
};

interface CommittedSnapshot {
  snapshotId: string;
  parentId: string | undefined;
  committedAt: Date;
  operation: string;
  ingestedAt: bigint | undefined;
}

/**
 * Writes batches of files into Iceberg tables through Spark Connect: one Spark job and one Iceberg commit
 * per batch, each row tagged with `_source_file` and `_ingested_at`, each snapshot marked with the batch
 * id so that a retry after a crash finds the commit instead of writing again ({@link writeOnce}).
 */
export class IcebergWriter {
  readonly #spark: SparkConnectClient;
  readonly #sparkPath: (uri: string) => string;
  readonly #tableProperties: Record<string, string>;
  readonly #isolateSourceFiles: boolean;
  readonly #logger: Logger | undefined;
  /** The session on which the isolating read setting was last applied. */
  #isolatedSession: string | undefined;

  constructor(options: IcebergWriterOptions) {
    this.#spark = options.spark;
    this.#sparkPath = options.sparkPath ?? ((uri) => uri);
    this.#tableProperties = { ...DEFAULT_TABLE_PROPERTIES, ...options.tableProperties };
    this.#isolateSourceFiles = options.isolateSourceFiles ?? true;
    this.#logger = options.logger;
  }

  /**
   * Reads the batch's files and commits their rows as one Iceberg snapshot, creating the table from the
   * batch's schema if it does not exist. Does not check whether the batch was committed before: see
   * {@link writeOnce}.
   *
   * @throws InvalidInputError for a bad table name, option key or file URI (before any Spark call).
   * @throws SparkConnectError subclasses as `@lakeferry/spark-connect` classifies them: a malformed file
   *   under FAILFAST, a missing path or a schema mismatch is not retryable; Spark being unavailable is.
   */
  async write(batch: WriteBatch, options?: ExecutionOptions): Promise<WriteResult> {
    const valid = validateWriteBatch(batch);
    const sources = planSourceFiles(valid.files, this.#sparkPath);
    const ingestedAt = ingestedAtNow();
    await this.#applyIsolation();
    const rows = this.#spark
      .read({
        format: valid.format,
        schema: valid.schema,
        options: valid.options,
        paths: sources.readerPaths,
      })
      .withColumns({
        _source_file: sources.column,
        _ingested_at: fn("timestamp_micros", lit(ingestedAt.micros)),
      });
    await this.#commit(valid, rows, ingestedAt, options);

    const snapshot = await this.#findSnapshot(valid.tableName, valid.batchId, ingestedAt.iso, options);
    if (snapshot === undefined) {
      throw new LakeferryError(
        "ICEBERG_COMMIT_NOT_FOUND",
        `${valid.tableName.quoted}: batch ${valid.batchId} was written but no snapshot on the current lineage carries it`,
        { retryable: false },
      );
    }
    const records = await this.#countRecords(valid.tableName, snapshot, valid.files, options);
    return {
      snapshotId: snapshot.snapshotId,
      committedAt: snapshot.committedAt,
      records,
      alreadyCommitted: false,
    };
  }

  /**
   * Exactly-once write: returns the earlier commit of `batch.batchId` (alreadyCommitted=true) when the
   * table's current lineage has one, otherwise {@link write}s the batch.
   */
  async writeOnce(batch: WriteBatch, options?: ExecutionOptions): Promise<WriteResult> {
    const valid = validateWriteBatch(batch);
    const found = await this.#findCommitted(valid.tableName, valid.batchId, valid.files, options);
    return found ?? (await this.write(batch, options));
  }

  /**
   * The commit of a batch, found by the batch id in the snapshot summaries of the table's current lineage;
   * undefined when the table or the batch is absent. `records` holds the files that have rows.
   */
  async findCommittedBatch(
    table: string,
    batchId: string,
    options?: ExecutionOptions,
  ): Promise<WriteResult | undefined> {
    return this.#findCommitted(parseTableName(table), validateBatchId(batchId), undefined, options);
  }

  async #findCommitted(
    tableName: TableName,
    batchId: string,
    files: readonly string[] | undefined,
    options: ExecutionOptions | undefined,
  ): Promise<WriteResult | undefined> {
    let snapshot: CommittedSnapshot | undefined;
    try {
      // The catalog may cache the table per session (Iceberg's cache-enabled, the default): without a
      // refresh, a commit made through another session (a crashed worker's) could stay invisible here.
      await this.#spark.sqlCommand(`REFRESH TABLE ${tableName.quoted}`, undefined, options);
      snapshot = await this.#findSnapshot(tableName, batchId, undefined, options);
    } catch (error) {
      if (isTableMissing(error)) return undefined;
      throw error;
    }
    if (snapshot === undefined) return undefined;
    const records = await this.#countRecords(tableName, snapshot, files, options);
    return {
      snapshotId: snapshot.snapshotId,
      committedAt: snapshot.committedAt,
      records,
      alreadyCommitted: true,
    };
  }

  /** Once per Spark session: one read partition (so one writing task) per source file. */
  async #applyIsolation(): Promise<void> {
    if (!this.#isolateSourceFiles || this.#isolatedSession === this.#spark.sessionId) return;
    await this.#spark.setConfig({ "spark.sql.files.openCostInBytes": ISOLATING_OPEN_COST });
    this.#isolatedSession = this.#spark.sessionId;
  }

  /** One Spark job, one Iceberg commit: append / overwrite(condition), or create the table if missing. */
  async #commit(
    batch: ValidatedBatch,
    rows: DataFrame,
    ingestedAt: IngestedAt,
    options: ExecutionOptions | undefined,
  ): Promise<void> {
    const table = batch.tableName.quoted;
    const marks = {
      [`snapshot-property.${BATCH_ID_PROPERTY}`]: batch.batchId,
      [`snapshot-property.${INGESTED_AT_PROPERTY}`]: ingestedAt.iso,
    };
    const writeToExisting = async (): Promise<void> => {
      const writer = rows.writeTo(table).options(marks);
      if (batch.mode === "replace") {
        const condition = fn("in", col("_source_file"), ...batch.files.map((file) => lit(file)));
        try {
          await writer.overwrite(condition, options);
        } catch (error) {
          throw isUnalignedOverwrite(error) ? unalignedReplaceError(batch, error) : error;
        }
      } else {
        await writer.append(options);
      }
    };

    try {
      await writeToExisting();
      return;
    } catch (error) {
      if (!isTableMissing(error)) throw error;
    }
    try {
      // The first batch's rows create the table: its first snapshot, with no parent.
      const creator = rows.writeTo(table).using("iceberg").options(marks);
      for (const [key, value] of Object.entries(this.#tableProperties)) creator.tableProperty(key, value);
      await creator.create(options);
    } catch (createError) {
      if (!isCreateRace(createError)) throw createError;
      this.#logger?.debug(
        { table, batchId: batch.batchId, err: createError },
        "another writer created the table first; appending",
      );
      try {
        await writeToExisting();
      } catch (appendError) {
        // Still missing: the create failed for its own reason.
        throw isTableMissing(appendError) ? createError : appendError;
      }
    }
  }

  /** The snapshot of the current lineage whose summary carries the batch id (and ingestion instant). */
  async #findSnapshot(
    tableName: TableName,
    batchId: string,
    ingestedAtIso: string | undefined,
    options: ExecutionOptions | undefined,
  ): Promise<CommittedSnapshot | undefined> {
    const args: Record<string, string> = { batchId };
    let condition = `s.summary['${BATCH_ID_PROPERTY}'] = :batchId`;
    if (ingestedAtIso !== undefined) {
      condition += ` AND s.summary['${INGESTED_AT_PROPERTY}'] = :ingestedAt`;
      args.ingestedAt = ingestedAtIso;
    }
    const table = tableName.quoted;
    const rows = await this.#spark.sql(
      `SELECT s.snapshot_id, s.parent_id, s.committed_at, s.operation,
              s.summary['${INGESTED_AT_PROPERTY}'] AS ingested_at
         FROM ${table}.\`snapshots\` AS s
         JOIN ${table}.\`history\` AS h ON h.snapshot_id = s.snapshot_id
        WHERE h.is_current_ancestor AND ${condition}
        ORDER BY s.committed_at DESC
        LIMIT 1`,
      args,
      options,
    );
    const row = rows[0];
    if (row === undefined) return undefined;
    return {
      snapshotId: idString(row.snapshot_id),
      parentId: row.parent_id === null || row.parent_id === undefined ? undefined : idString(row.parent_id),
      committedAt: toDate(row.committed_at),
      operation: String(row.operation),
      ingestedAt: typeof row.ingested_at === "string" ? parseMicros(row.ingested_at) : undefined,
    };
  }

  /**
   * Rows per `_source_file` in the snapshot, read from the table (never from the source files again).
   * An append is read incrementally (parent → snapshot); a table's first snapshot by its id; an
   * overwrite, which an incremental read refuses, as of the snapshot filtered by the batch's
   * `_ingested_at` literal (and its files, when known).
   */
  async #countRecords(
    tableName: TableName,
    snapshot: CommittedSnapshot,
    files: readonly string[] | undefined,
    options: ExecutionOptions | undefined,
  ): Promise<Map<string, number>> {
    const table = tableName.quoted;
    let rows: DataFrame;
    if (snapshot.operation === "append" && snapshot.parentId !== undefined) {
      rows = this.#spark.table(table, {
        "start-snapshot-id": snapshot.parentId,
        "end-snapshot-id": snapshot.snapshotId,
      });
    } else if (snapshot.operation === "append") {
      rows = this.#spark.table(table, { "snapshot-id": snapshot.snapshotId });
    } else {
      if (snapshot.ingestedAt === undefined) {
        throw new LakeferryError(
          "ICEBERG_SNAPSHOT_UNREADABLE",
          `${table}: snapshot ${snapshot.snapshotId} (${snapshot.operation}) has no ${INGESTED_AT_PROPERTY} mark to count its rows by`,
          { retryable: false },
        );
      }
      let condition: Column = fn("==", col("_ingested_at"), fn("timestamp_micros", lit(snapshot.ingestedAt)));
      if (files !== undefined) {
        condition = fn("and", condition, fn("in", col("_source_file"), ...files.map((file) => lit(file))));
      }
      rows = this.#spark.table(table, { "snapshot-id": snapshot.snapshotId }).filter(condition);
    }
    const counts = await rows
      .groupBy(col("_source_file"))
      .agg(fn("count", lit(1)).alias("records"))
      .collect(options);

    const records = new Map<string, number>();
    for (const file of files ?? []) records.set(file, 0);
    for (const row of counts) records.set(String(row._source_file), toCount(row.records));
    return records;
  }
}

function idString(value: unknown): string {
  if (typeof value === "bigint" || typeof value === "number" || typeof value === "string")
    return String(value);
  throw new LakeferryError("ICEBERG_UNEXPECTED_RESULT", `snapshot id of unexpected type ${typeof value}`, {
    retryable: false,
  });
}

function toDate(value: unknown): Date {
  if (value instanceof Date) return value;
  throw new LakeferryError("ICEBERG_UNEXPECTED_RESULT", `committed_at of unexpected type ${typeof value}`, {
    retryable: false,
  });
}

function toCount(value: Row[string]): number {
  if (typeof value === "number") return value;
  if (typeof value === "bigint") return Number(value);
  throw new LakeferryError("ICEBERG_UNEXPECTED_RESULT", `count of unexpected type ${typeof value}`, {
    retryable: false,
  });
}

/** What Spark says when a table (or its namespace) does not exist. */
function isTableMissing(error: unknown): boolean {
  if (!(error instanceof SparkConnectError)) return false;
  const text = `${error.errorClass ?? ""} ${error.message}`;
  return /TABLE_OR_VIEW_NOT_FOUND|SCHEMA_NOT_FOUND|NoSuchTableException|NoSuchNamespaceException/.test(text);
}

/**
 * A create that lost a race with a concurrent creator: Iceberg's AlreadyExistsException, or the JDBC
 * catalog's `UncheckedSQLException: Unknown failure` over a duplicate key on `iceberg_tables_pkey`
 * (PostgreSQL's unique violation is not mapped to AlreadyExists). Whether the table now exists is then
 * settled by appending to it.
 */
function isCreateRace(error: unknown): boolean {
  if (!(error instanceof SparkConnectError)) return false;
  const causes = error.causes.map((cause) => `${cause.exceptionClass} ${cause.message}`);
  const text = [error.errorClass ?? "", error.exceptionClass ?? "", error.message, ...causes].join(" ");
  return (
    /AlreadyExistsException|TABLE_OR_VIEW_ALREADY_EXISTS|TABLE_ALREADY_EXISTS/.test(text) ||
    (/UncheckedSQLException/.test(text) && /Unknown failure|iceberg_tables_pkey|duplicate key/.test(text))
  );
}

/** Iceberg's overwrite-by-filter found a data file holding rows of replaced and of other source files. */
function isUnalignedOverwrite(error: unknown): boolean {
  return (
    error instanceof SparkConnectError &&
    /Cannot delete file where some, but not all, rows match/.test(error.message)
  );
}

function unalignedReplaceError(batch: ValidatedBatch, cause: unknown): LakeferryError {
  return new LakeferryError(
    "ICEBERG_REPLACE_UNALIGNED",
    `${batch.tableName.quoted}: cannot replace the rows of ${batch.files.length} file(s): their rows share Iceberg ` +
      "data files with other source files (written with isolateSourceFiles off, or compacted since), and " +
      "Iceberg can only drop whole data files in one commit. Delete the old rows, then append.",
    { retryable: false, cause },
  );
}
