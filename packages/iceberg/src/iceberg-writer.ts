import { errorMessage, LakeferryError, type Logger } from "@lakeferry/core";
import {
  col,
  expr,
  fn,
  isAlreadyPublished,
  isNotCherrypickable,
  isStagedSnapshotGone,
  isTableAlreadyExists,
  isTableNotFound,
  isUnalignedOverwrite,
  columnTypeConflict,
  lit,
  quoteName,
  schemaDdl,
  type DataFrame,
  type ExecutionOptions,
  type Row,
  type SchemaField,
  type SparkConnectClient,
} from "@lakeferry/spark-connect";
import {
  BadRecordsError,
  censusAggregates,
  CORRUPT_RECORD_COLUMN,
  firstErrorText,
  RECORD_NUMBER,
  recordNumberColumn,
  refusalOf,
  rejectedColumns,
  rejectedTableName,
  type FileRecordCounts,
  type RefusedFile,
} from "./bad-records.ts";
import { BatchReader } from "./batch-reader.ts";
import { formatMicros, ingestedAtNow, parseMicros, type IngestedAt } from "./ingested-at.ts";
import {
  columnMismatchError,
  compareColumns,
  refusalForNewColumns,
  rescueShape,
  SchemaChangeError,
  withHints,
  type ReadPlan,
  type SchemaChangeRefusal,
} from "./schema-evolution.ts";
import { planSourceFiles, type SourceFilePlan as SourceFiles } from "./source-file-column.ts";
import {
  parseTableName,
  validateWriteBatch,
  type TableName,
  type ValidatedBatch,
  type WriteBatch,
} from "./write-batch.ts";

/** What a committed batch produced. */
export interface WriteResult {
  /** The Iceberg snapshot that holds the batch's rows (decimal string: ids are 64-bit). */
  snapshotId: string;
  /** Rows committed per file URI as the caller gave it; 0 for a file with no rows. */
  records: Map<string, number>;
  /** Records parsed and rejected per file (batches that set bad records apart). */
  recordCounts?: Map<string, FileRecordCounts>;
}

/** A batch written as a staged snapshot: in the table's metadata, invisible until published. */
export interface StagedWrite {
  /** The staged snapshot (decimal string). */
  stagedSnapshotId: string;
  /** Rows per file URI as the caller gave it (0 for a file with no rows), counted in the staged snapshot. */
  records: Map<string, number>;
  /** The `_ingested_at` value of every row written (µs since the epoch). */
  ingestedAtMicros: bigint;
  /**
   * True when the table committed the write at once instead of staging it (its `write.wap.enabled` was
   * turned off, or the table was recreated without it): the rows are visible already, unfenced.
   */
  visible?: boolean;
  /**
   * Records parsed and rejected per file, and each file's first bad record: set when the batch sets bad
   * records apart (`badRecords` continue or skipFile, json/csv).
   */
  recordCounts?: Map<string, FileRecordCounts>;
  /**
   * The batch's bad records, staged in the quarantine table (`<table>__rejected`, same wap id): publish it
   * with the rows, first. Absent when no file of the batch had a bad record.
   */
  rejected?: { table: string; stagedSnapshotId: string; visible?: boolean };
  /**
   * Where the staging time went, in ms: `prepare` (settings, a tolerant read's census, table creation),
   * `write` (Spark's read of the files and write of the data files), `lookup` (finding the staged
   * snapshot), `count` (rows per file), `rejected` (staging the bad records); `headers` (CSV read with a
   * header: learning each file's header, before the rest).
   */
  timings?: {
    headersMs?: number;
    prepareMs: number;
    writeMs: number;
    lookupMs: number;
    countMs: number;
    rejectedMs?: number;
  };
}

/** How publishing a staged snapshot ended. */
export type PublishOutcome =
  /** The staged snapshot is applied: `snapshotId` is the table's current snapshot now. */
  | { kind: "published"; snapshotId: string }
  /** Iceberg refused: this batch's staged snapshot was published before (its wap id is on the lineage). */
  | { kind: "already-published" }
  /**
   * The staged snapshot cannot be published (expired by maintenance, or an overwrite that no longer
   * fast-forwards the table). Whether an earlier publish made the rows visible is for the caller to find
   * out ({@link IcebergWriter.hasBatchRows}).
   */
  | { kind: "unpublishable"; reason: string };

export interface IcebergWriterOptions {
  /**
   * The Spark Connect session that reads the files and writes the staged snapshots. Staging uses the
   * session setting `spark.wap.id`, so a writer stages one batch at a time: give each concurrent writer
   * its own session.
   */
  spark: SparkConnectClient;
  /**
   * Maps a caller's file URI to the path Spark reads (e.g. `s3://b/k` → `s3a://b/k`), for batches that do
   * not bring `readPaths`. Default: identity. `_source_file` always carries the caller's URI.
   */
  sparkPath?: (uri: string) => string;
  /**
   * Extra table properties for tables this writer creates. Defaults (which these may override):
   * `format-version=2`, `write.metadata.metrics.column._source_file=full`, `write.wap.enabled=true`.
   */
  tableProperties?: Record<string, string>;
  /**
   * Keep each source file's rows in data files of their own, so that a later `replace` of a file can drop
   * whole data files (Iceberg's overwrite-by-filter cannot split a data file). Costs one Spark task and
   * at least one data file per source file. Default for batches that do not say (`isolateFiles`): true.
   */
  isolateSourceFiles?: boolean;
  /** Debug lines about table creation races. Default: none. */
  logger?: Logger;
}

/** Summary keys written to every snapshot this writer stages. */
export const BATCH_ID_PROPERTY = "lakeferry.batch-id";
export const INGESTED_AT_PROPERTY = "lakeferry.ingested-at";
/** Iceberg's summary key of a staged (write-audit-publish) snapshot. */
const STAGED_WAP_ID = "wap.id";
/** Iceberg's table property that lets a write's columns differ from the table's (resolved by Iceberg). */
const ACCEPT_ANY_SCHEMA = "write.spark.accept-any-schema";

/** Large enough that Spark never packs two files into one read partition (so never into one data file). */
const ISOLATING_OPEN_COST = String(2 ** 40);
/** Spark's default `spark.sql.files.openCostInBytes` (4 MiB): small files are packed together. */
const PACKING_OPEN_COST = String(4 * 1024 * 1024);
/**
 * Tasks of the Spark job that looks up a batch's files (Spark lists explicit paths in a job of its own once
 * there are more than 32). Spark's default makes one task per path: for 1,000 small files that listing took
 * about 4 s of a 5 s write, against about 1 s with a few dozen tasks, which still list object stores in
 * parallel.
 */
const LISTING_TASKS = "32";

/** Spark's largest split of a file; a tolerant read's census reads each file whole (record numbers). */
const MAX_PARTITION_BYTES = "spark.sql.files.maxPartitionBytes";
/** Spark's default for {@link MAX_PARTITION_BYTES}, restored when the server does not say its own. */
const DEFAULT_MAX_PARTITION_BYTES = "134217728";
/**
 * Settings of the reads that number records: one file per task (never two packed), never split, and CSV
 * parsing every column (with column pruning Spark parses only the columns a query needs and finds fewer
 * records bad than the write that reads them all).
 */
const WHOLE_FILE_READS: Readonly<Record<string, string>> = {
  "spark.sql.files.openCostInBytes": ISOLATING_OPEN_COST,
  [MAX_PARTITION_BYTES]: String(2 ** 40),
  "spark.sql.csv.parser.columnPruning.enabled": "false",
};

const DEFAULT_TABLE_PROPERTIES: Readonly<Record<string, string>> = {
  "format-version": "2",
  "write.metadata.metrics.column._source_file": "full",
  "write.wap.enabled": "true",
};

interface StagedSnapshot {
  snapshotId: string;
  parentId: string | undefined;
  operation: string;
  ingestedAt: bigint | undefined;
  /** Committed at once, not staged (no wap id in its summary): on the table's current lineage. */
  current: boolean;
}

/**
 * Writes batches of files into Iceberg tables through Spark Connect with write-audit-publish: one Spark job
 * stages each batch as one snapshot (invisible, marked with the batch id), and a separate, cheap publish
 * makes it current. Between the two the caller decides (in Postgres) whether the batch may become visible
 * at all, so a write that lands late, twice, or for a batch given up on is never seen.
 */
export class IcebergWriter {
  readonly #spark: SparkConnectClient;
  readonly #sparkPath: (uri: string) => string;
  readonly #tableProperties: Record<string, string>;
  readonly #isolateSourceFiles: boolean;
  readonly #logger: Logger | undefined;
  /** Tables known to stage writes (`write.wap.enabled`) in this session's catalog. */
  readonly #stagingTables = new Set<string>();
  /**
   * The server's `spark.sql.files.maxPartitionBytes`, read before this writer's first census changed it
   * (a census reads each file whole); put back before every write from then on.
   */
  #splitBytes: string | undefined;
  /** Serialises staging: `spark.wap.id` belongs to the session. */
  #staging: Promise<unknown> = Promise.resolve();

  constructor(options: IcebergWriterOptions) {
    this.#spark = options.spark;
    this.#sparkPath = options.sparkPath ?? ((uri) => uri);
    this.#tableProperties = { ...DEFAULT_TABLE_PROPERTIES, ...options.tableProperties };
    this.#isolateSourceFiles = options.isolateSourceFiles ?? true;
    this.#logger = options.logger;
  }

  /**
   * Reads the batch's files and stages their rows as one Iceberg snapshot (write-audit-publish, `wap.id` =
   * the batch id), creating the table if it does not exist. Nothing is visible until {@link publish}.
   * Counts the rows per file in the staged snapshot. One batch at a time per writer (others wait).
   *
   * @throws InvalidInputError for a bad table name, option key or file URI (before any Spark call).
   * @throws SparkConnectError subclasses as `@lakeferry/spark-connect` classifies them.
   */
  stage(batch: WriteBatch, options?: ExecutionOptions): Promise<StagedWrite> {
    const valid = validateWriteBatch(batch);
    const run = this.#staging.then(
      () => this.#stage(valid, options),
      () => this.#stage(valid, options),
    );
    this.#staging = run.catch(() => {});
    return run;
  }

  /**
   * Makes a staged snapshot current (Iceberg's `cherrypick_snapshot`: an append is applied on top of
   * whatever was committed since; an overwrite only while nothing was). Iceberg refuses to publish a batch's
   * staged snapshot twice while the first publish is on the table's lineage.
   */
  async publish(
    table: string,
    stagedSnapshotId: string,
    options?: ExecutionOptions,
  ): Promise<PublishOutcome> {
    const name = parseTableName(table);
    if (!/^-?\d{1,20}$/.test(stagedSnapshotId)) {
      throw new LakeferryError("ICEBERG_BAD_SNAPSHOT_ID", `not a snapshot id: ${stagedSnapshotId}`, {
        retryable: false,
      });
    }
    try {
      // The table inline, not as a parameter: Iceberg's own CALL parser on Spark 3.5 knows no parameter
      // markers. Its parts are identifiers (parseTableName), so the literal needs no escaping.
      const rows = await this.#spark.sqlCommand(
        `CALL \`${name.catalog}\`.system.cherrypick_snapshot('\`${name.namespace}\`.\`${name.table}\`', ${stagedSnapshotId})`,
        undefined,
        options,
      );
      const current = rows[0]?.current_snapshot_id;
      return { kind: "published", snapshotId: current === undefined ? stagedSnapshotId : idString(current) };
    } catch (error) {
      if (isAlreadyPublished(error)) return { kind: "already-published" };
      if (isStagedSnapshotGone(error) || isNotCherrypickable(error)) {
        return { kind: "unpublishable", reason: errorMessage(error) };
      }
      throw error;
    }
  }

  /**
   * Stages the batch and publishes it at once: for callers that need no fence between the two (benchmarks,
   * tools). The pipeline stages, decides in Postgres, then publishes.
   */
  async write(batch: WriteBatch, options?: ExecutionOptions): Promise<WriteResult> {
    const staged = await this.stage(batch, options);
    const rejected = staged.rejected;
    if (rejected !== undefined && rejected.visible !== true) {
      const outcome = await this.publish(rejected.table, rejected.stagedSnapshotId, options);
      if (outcome.kind === "unpublishable") {
        throw new LakeferryError(
          "ICEBERG_PUBLISH_FAILED",
          `${rejected.table}: the rejected records of batch ${batch.batchId} could not be published: ${outcome.reason}`,
          { retryable: true },
        );
      }
    }
    const counts = staged.recordCounts === undefined ? {} : { recordCounts: staged.recordCounts };
    if (staged.visible) return { snapshotId: staged.stagedSnapshotId, records: staged.records, ...counts };
    const published = await this.publish(batch.table, staged.stagedSnapshotId, options);
    if (published.kind !== "published") {
      throw new LakeferryError(
        "ICEBERG_PUBLISH_FAILED",
        `${batch.table}: batch ${batch.batchId} was staged but could not be published: ${published.kind === "unpublishable" ? published.reason : "published before"}`,
        { retryable: true },
      );
    }
    return { snapshotId: published.snapshotId, records: staged.records, ...counts };
  }

  /**
   * Whether the table (as it is now, whatever its snapshot history) holds rows written with this
   * `_ingested_at` value for any of `files`: how recovery learns that a batch was published once its
   * snapshots may have been expired. A batch of files with no rows is never found.
   */
  async hasBatchRows(
    table: string,
    ingestedAtMicros: bigint,
    files: readonly string[],
    options?: ExecutionOptions,
  ): Promise<boolean> {
    const name = parseTableName(table);
    if (files.length === 0) return false;
    try {
      // A catalog that caches tables per session would otherwise miss a publish made through another one.
      await this.#spark.sqlCommand(`REFRESH TABLE ${name.quoted}`, undefined, options);
      const rows = await this.#spark
        .table(name.quoted)
        .filter(
          fn(
            "and",
            fn("==", col("_ingested_at"), fn("timestamp_micros", lit(ingestedAtMicros))),
            fn("in", col("_source_file"), ...files.map((file) => lit(file))),
          ),
        )
        .select(col("_source_file"))
        .limit(1)
        .collect(options);
      return rows.length > 0;
    } catch (error) {
      if (isTableNotFound(error)) return false;
      throw error;
    }
  }

  async #stage(valid: ValidatedBatch, options: ExecutionOptions | undefined): Promise<StagedWrite> {
    const readPaths = valid.readPaths ?? valid.files.map((uri) => this.#sparkPath(uri));
    const byUri = new Map(valid.files.map((uri, index) => [uri, readPaths[index] as string]));
    const sources = planSourceFiles(valid.files, (uri) => byUri.get(uri) ?? uri);
    const ingestedAt =
      valid.ingestedAtMicros === undefined
        ? ingestedAtNow()
        : { micros: valid.ingestedAtMicros, iso: formatMicros(valid.ingestedAtMicros) };
    const policy = valid.badRecords;
    const corrupt = `\`${CORRUPT_RECORD_COLUMN}\``;
    const files = new BatchReader({
      spark: this.#spark,
      format: valid.format,
      options: valid.options,
      readerOptions: sources.readerOptions,
      readerPaths: sources.readerPaths,
      files: valid.files,
      sourceColumnOf: sources.columnOf,
      // One task per file (as a batch written with isolated files leaves the session) made the check of 100
      // small files take 3-4 s; packed, they are read by a few tasks.
      headerCheckSettings: { "spark.sql.files.openCostInBytes": PACKING_OPEN_COST },
    });
    const plan = await this.#readPlan(valid, sources, files, options);
    const declared = plan.declared;
    const schema =
      policy !== undefined && declared !== undefined ? `${declared}, ${corrupt} STRING` : declared;
    // Every row as read; in a tolerant read (PERMISSIVE) a bad record has its text in the corrupt-record column.
    // Built once per set of paths: the rows and the census read the batch's files alike, and a CSV batch of
    // several headers with inferred columns analyzes each header's files while it builds the read.
    const reads = new Map<string, Promise<DataFrame>>();
    const readAll = (paths: string[]): Promise<DataFrame> => {
      const key = paths.join("\n");
      let frame = reads.get(key);
      if (frame === undefined) reads.set(key, (frame = buildReadAll(paths)));
      return frame;
    };
    const buildReadAll = async (paths: string[]): Promise<DataFrame> => {
      const frame = await files.read(
        paths,
        schema,
        {
          _source_file: sources.column,
          _ingested_at: fn("timestamp_micros", lit(ingestedAt.micros)),
        },
        options,
      );
      if (policy === undefined || declared !== undefined) return frame;
      // An inferred schema has the corrupt-record column only when Spark met a bad record: add it (null)
      // when it does not.
      const none = this.#spark.sqlFrame(`SELECT CAST(NULL AS STRING) AS ${corrupt} WHERE false`);
      return frame.unionByName(none, { allowMissingColumns: true });
    };
    // The rows that go to the table.
    const read = async (paths: string[]): Promise<DataFrame> => {
      const all = await readAll(paths);
      const good =
        policy === undefined
          ? all
          : all.filter(fn("isnull", col(CORRUPT_RECORD_COLUMN))).drop(CORRUPT_RECORD_COLUMN);
      return plan.shape === undefined ? good : plan.shape(good);
    };
    const rows = await read(sources.readerPaths);
    const isolate = valid.isolateFiles ?? this.#isolateSourceFiles;
    let since = performance.now();
    const lap = (): number => {
      const now = performance.now();
      const ms = Math.round(now - since);
      since = now;
      return ms;
    };
    let recordCounts: Map<string, FileRecordCounts> | undefined;
    if (policy !== undefined) {
      this.#splitBytes ??=
        (await this.#spark.getConfig([MAX_PARTITION_BYTES]))[MAX_PARTITION_BYTES] ??
        DEFAULT_MAX_PARTITION_BYTES;
      recordCounts = await this.#census(valid, declared, await readAll(sources.readerPaths), options);
      const refused = new Map<string, RefusedFile>();
      for (const [uri, counts] of recordCounts) {
        const refusal = refusalOf(policy, counts);
        if (refusal !== undefined) refused.set(uri, refusal);
      }
      if (refused.size > 0) {
        await this.#spark.setConfig({ [MAX_PARTITION_BYTES]: this.#splitBytes });
        throw new BadRecordsError(refused);
      }
    }
    // Before anything lists the batch's files (creating a table plans the read too). Files are split as
    // the server splits them again, whatever a census (failed or not) left the session with.
    await this.#spark.setConfig({
      "spark.sql.files.openCostInBytes": isolate ? ISOLATING_OPEN_COST : PACKING_OPEN_COST,
      "spark.sql.sources.parallelPartitionDiscovery.parallelism": LISTING_TASKS,
      ...(this.#splitBytes === undefined ? {} : { [MAX_PARTITION_BYTES]: this.#splitBytes }),
    });
    // A declared schema is the same read from one file as from all: a new table is created from the
    // first file alone (planning the read of 1,000 files to create an empty table took 7 s of a 10 s write).
    const [first] = sources.readerPaths;
    const shape = declared !== undefined && first !== undefined ? await read([first]) : rows;
    await this.#ensureStagingTable(valid.tableName, valid.batchId, shape, options, {
      evolving: valid.schemaEvolution === "addNewColumns",
    });
    await this.#spark.setConfig({ "spark.wap.id": valid.batchId });
    const prepareMs = lap();
    await this.#writeStaged(valid, rows, ingestedAt, options);
    const writeMs = lap();

    const snapshot = await this.#findStaged(valid.tableName, valid.batchId, ingestedAt.iso, options);
    if (snapshot === undefined) {
      throw new LakeferryError(
        "ICEBERG_STAGED_NOT_FOUND",
        `${valid.tableName.quoted}: batch ${valid.batchId} was written but no staged snapshot carries it`,
        { retryable: true },
      );
    }
    // Committed at once: the table does not stage (any more); make sure it does before the next batch.
    if (snapshot.current) this.#forgetStaging(valid.tableName);
    const lookupMs = lap();
    const records =
      (isolate
        ? await this.#countFromMetadata(valid.tableName, snapshot, valid.files, options)
        : undefined) ?? (await this.#countRecords(valid.tableName, snapshot, valid.files, options));
    const countMs = lap();
    const withRejects = valid.files
      .map((uri, index) => ({ uri, path: sources.readerPaths[index] as string }))
      .filter(({ uri }) => (recordCounts?.get(uri)?.rejected ?? 0) > 0);
    const rejected =
      withRejects.length === 0
        ? undefined
        : await this.#stageRejected(
            valid,
            declared,
            await readAll(withRejects.map((file) => file.path)),
            ingestedAt,
            options,
          );
    return {
      stagedSnapshotId: snapshot.snapshotId,
      records,
      ingestedAtMicros: ingestedAt.micros,
      ...(snapshot.current ? { visible: true } : {}),
      ...(recordCounts === undefined ? {} : { recordCounts }),
      ...(rejected === undefined ? {} : { rejected }),
      timings: {
        ...(files.headerMs === undefined ? {} : { headersMs: files.headerMs }),
        prepareMs,
        writeMs,
        lookupMs,
        countMs,
        ...(rejected ? { rejectedMs: lap() } : {}),
      },
    };
  }

  /**
   * Reads the batch's files once in PERMISSIVE mode and counts, per file, the records parsed, the bad ones
   * and the first bad one. Each file is read by one Spark task of its own, whole, so that a record's number
   * is its position in the file. The counts come from the same plan that finds the bad records, so Spark's
   * refusal of queries over only the corrupt-record column does not apply (the plan reads every column).
   */
  async #census(
    valid: ValidatedBatch,
    schema: string | undefined,
    rows: DataFrame,
    options: ExecutionOptions | undefined,
  ): Promise<Map<string, FileRecordCounts>> {
    await this.#spark.setConfig(WHOLE_FILE_READS);
    const found = await rows
      .withColumns({ [RECORD_NUMBER]: recordNumberColumn() })
      .groupBy(col("_source_file"))
      .agg(...censusAggregates(valid.format, schema))
      .collect(options);
    const counts = new Map<string, FileRecordCounts>();
    for (const file of valid.files) counts.set(file, { parsed: 0, rejected: 0 });
    for (const row of found) {
      const firstError = firstErrorText(row.first);
      counts.set(String(row._source_file), {
        parsed: toCount(row.parsed),
        rejected: toCount(row.rejected),
        ...(firstError === undefined ? {} : { firstError }),
      });
    }
    return counts;
  }

  /**
   * Stages the bad records of the files that have some in the quarantine table (`<table>__rejected`),
   * under the same wap id as the batch's rows: published with them, through the same fence.
   */
  async #stageRejected(
    valid: ValidatedBatch,
    schema: string | undefined,
    rows: DataFrame,
    ingestedAt: IngestedAt,
    options: ExecutionOptions | undefined,
  ): Promise<{ table: string; stagedSnapshotId: string; visible?: boolean }> {
    const tableName = rejectedTableName(valid.tableName);
    const table = `${tableName.catalog}.${tableName.namespace}.${tableName.table}`;
    await this.#spark.setConfig(WHOLE_FILE_READS);
    try {
      const rejected = rows
        .withColumns({ [RECORD_NUMBER]: recordNumberColumn() })
        .filter(fn("isnotnull", col(CORRUPT_RECORD_COLUMN)))
        .select(...rejectedColumns(valid.format, schema, valid.batchId, ingestedAt.micros));
      await this.#ensureStagingTable(tableName, valid.batchId, rejected, options);
      await rejected
        .writeTo(tableName.quoted)
        .options({
          [`snapshot-property.${BATCH_ID_PROPERTY}`]: valid.batchId,
          [`snapshot-property.${INGESTED_AT_PROPERTY}`]: ingestedAt.iso,
        })
        .append(options);
    } finally {
      await this.#spark.setConfig({ [MAX_PARTITION_BYTES]: this.#splitBytes ?? DEFAULT_MAX_PARTITION_BYTES });
    }
    const snapshot = await this.#findStaged(tableName, valid.batchId, ingestedAt.iso, options);
    if (snapshot === undefined) {
      throw new LakeferryError(
        "ICEBERG_STAGED_NOT_FOUND",
        `${tableName.quoted}: the rejected records of batch ${valid.batchId} were written but no staged snapshot carries them`,
        { retryable: true },
      );
    }
    if (snapshot.current) this.#forgetStaging(tableName);
    return { table, stagedSnapshotId: snapshot.snapshotId, ...(snapshot.current ? { visible: true } : {}) };
  }

  /** The table does not stage (any more): the next batch sets it up again, for either kind of write. */
  #forgetStaging(tableName: TableName): void {
    this.#stagingTables.delete(tableName.quoted);
    this.#stagingTables.delete(`${tableName.quoted} ${ACCEPT_ANY_SCHEMA}`);
  }

  /**
   * The table exists and stages writes. A missing table is created empty from the batch's schema (so its
   * first rows are staged like any others); an existing one gets `write.wap.enabled` once per writer.
   */
  async #ensureStagingTable(
    tableName: TableName,
    batchId: string,
    rows: DataFrame,
    options: ExecutionOptions | undefined,
    { evolving = false }: { evolving?: boolean } = {},
  ): Promise<void> {
    const table = tableName.quoted;
    // Writes that add columns hand the columns' resolution to Iceberg (by name, new ones merged in).
    const properties: Record<string, string> = {
      "write.wap.enabled": "true",
      ...(evolving ? { [ACCEPT_ANY_SCHEMA]: "true" } : {}),
    };
    const cacheKey = evolving ? `${table} ${ACCEPT_ANY_SCHEMA}` : table;
    if (this.#stagingTables.has(cacheKey)) return;
    const enableStaging = (): Promise<unknown> =>
      this.#spark.sqlCommand(
        `ALTER TABLE ${table} SET TBLPROPERTIES (${Object.entries(properties)
          .map(([key, value]) => `'${key}' = '${value}'`)
          .join(", ")})`,
        undefined,
        options,
      );
    try {
      await enableStaging();
    } catch (error) {
      if (!isTableNotFound(error)) throw error;
      try {
        const creator = rows.limit(0).writeTo(table).using("iceberg");
        for (const [key, value] of Object.entries(this.#tableProperties)) creator.tableProperty(key, value);
        if (evolving) creator.tableProperty(ACCEPT_ANY_SCHEMA, "true");
        await creator.create(options);
      } catch (createError) {
        if (!isTableAlreadyExists(createError)) throw createError;
        this.#logger?.debug({ table, batchId, err: createError }, "another writer created the table first");
        await enableStaging();
      }
    }
    this.#stagingTables.add(cacheKey);
  }

  /**
   * The table's own columns (not `_source_file` and `_ingested_at`), types as Spark names them, or undefined
   * when the table does not exist yet.
   */
  async tableColumns(table: string, options?: ExecutionOptions): Promise<SchemaField[] | undefined> {
    return this.#tableColumns(parseTableName(table), options);
  }

  async #tableColumns(
    table: TableName,
    options: ExecutionOptions | undefined,
  ): Promise<SchemaField[] | undefined> {
    let schema: SchemaField[];
    try {
      // A catalog that caches tables per session would otherwise miss columns another writer added.
      await this.#spark.sqlCommand(`REFRESH TABLE ${table.quoted}`, undefined, options);
      // Spark's analysis, not DESCRIBE: DESCRIBE prints nested field names unquoted and cuts wide structs
      // short, which is no DDL to read or cast with.
      schema = (await this.#spark.table(table.quoted).schema(options)).fields;
    } catch (error) {
      if (isTableNotFound(error)) return undefined;
      throw error;
    }
    return schema.filter((column) => column.name !== "_source_file" && column.name !== "_ingested_at");
  }

  /**
   * Adds columns to the table (an approved schema change): those it has already are left as they are.
   * Returns the columns added.
   */
  async addColumns(
    table: string,
    columns: readonly { name: string; type: string }[],
    options?: ExecutionOptions,
  ): Promise<string[]> {
    const tableName = parseTableName(table);
    const existing = await this.#tableColumns(tableName, options);
    if (existing === undefined) {
      throw new LakeferryError("ICEBERG_TABLE_NOT_FOUND", `${tableName.quoted} does not exist`, {
        retryable: false,
      });
    }
    const known = new Set(existing.map((column) => column.name.toLowerCase()));
    const added = columns.filter((column) => !known.has(column.name.toLowerCase()));
    if (added.length === 0) return [];
    await this.#spark.sqlCommand(
      `ALTER TABLE ${tableName.quoted} ADD COLUMNS (${added.map((column) => `${quoteName(column.name)} ${column.type}`).join(", ")})`,
      undefined,
      options,
    );
    return added.map((column) => column.name);
  }

  /**
   * How the batch's files are read under its schema evolution mode: the schema they are read with (Spark
   * infers one when undefined) and the shape given to their rows before the write.
   */
  async #readPlan(
    valid: ValidatedBatch,
    sources: SourceFiles,
    files: BatchReader,
    options: ExecutionOptions | undefined,
  ): Promise<ReadPlan> {
    if (valid.schema !== undefined) return { declared: valid.schema };
    const mode = valid.schemaEvolution;
    const knowsTable = mode === "none" || mode === "rescue" || mode === "failOnNewColumns";
    let table = knowsTable ? await this.#tableColumns(valid.tableName, options) : undefined;
    // Under `none` the files are read with the table's columns (once it exists).
    if (mode === "none" && table !== undefined) return { declared: schemaDdl(table) };
    if (!knowsTable && valid.schemaHints === undefined) return { declared: undefined };
    if (mode === "none" && valid.schemaHints === undefined) return { declared: undefined };
    let inferred = await this.#inferSchema(valid, files, options);
    if (valid.schemaHints !== undefined) {
      // The hinted types as Spark spells them (they go into expressions below): Spark parses the hints once.
      const hinted = schemaDdl(withHints(inferred, valid.schemaHints));
      inferred = (
        await this.#spark
          .read({
            format: valid.format,
            schema: hinted,
            options: { ...valid.options, ...sources.readerOptions },
            paths: sources.readerPaths,
          })
          .schema(options)
      ).fields;
    }
    const declared = schemaDdl(inferred);
    const rescued = valid.rescuedDataColumn;
    if (mode === "rescue") {
      // The first batch makes the table: its files' columns and an empty rescued-data column.
      if (table === undefined)
        return { declared, shape: (rows) => rows.withColumns({ [rescued]: expr("CAST(NULL AS STRING)") }) };
      if (!table.some((column) => column.name.toLowerCase() === rescued.toLowerCase())) {
        await this.addColumns(
          `${valid.tableName.catalog}.${valid.tableName.namespace}.${valid.tableName.table}`,
          [{ name: rescued, type: "string" }],
          options,
        );
      }
      table = table.filter((column) => column.name.toLowerCase() !== rescued.toLowerCase());
      const columns = table;
      return { declared, shape: (rows) => rescueShape(rows, inferred, columns, rescued) };
    }
    if (mode === "failOnNewColumns" && table !== undefined) {
      const { added, mismatch } = compareColumns(inferred, table);
      // Read with the table's columns, such a file would lose values without a word: it fails instead.
      if (mismatch !== undefined) throw columnMismatchError(valid.tableName.quoted, mismatch);
      if (added.length > 0) await this.#refuseNewColumns(valid, sources, files, declared, added, options);
      return { declared: schemaDdl(table) };
    }
    return { declared };
  }

  /** The columns Spark infers from the batch's files (the corrupt-record column left out). */
  async #inferSchema(
    valid: ValidatedBatch,
    files: BatchReader,
    options: ExecutionOptions | undefined,
  ): Promise<SchemaField[]> {
    // Parquet and ORC take their schema from one file unless told to merge every file's.
    const merge: Record<string, string> =
      valid.format === "parquet" || valid.format === "orc" ? { mergeSchema: "true" } : {};
    const read = await files.read(files.paths, undefined, {}, options, merge);
    const schema = await read.schema(options);
    return schema.fields.filter((field) => field.name !== CORRUPT_RECORD_COLUMN);
  }

  /**
   * Under `failOnNewColumns`: finds the files with a value in a column the table lacks, and refuses them
   * (with the columns each one has) before anything is written. A new column no file fills is left out.
   */
  async #refuseNewColumns(
    valid: ValidatedBatch,
    sources: SourceFiles,
    files: BatchReader,
    declared: string,
    added: SchemaField[],
    options: ExecutionOptions | undefined,
  ): Promise<void> {
    const read = await files.read(sources.readerPaths, declared, { _source_file: sources.column }, options);
    const counts = await read
      .groupBy(col("_source_file"))
      .agg(
        ...added.map((column, index) => fn("count", expr(quoteName(column.name))).alias(`filled_${index}`)),
      )
      .collect(options);
    const refused = new Map<string, SchemaChangeRefusal>();
    for (const row of counts) {
      const columns = added.filter((_, index) => toCount(row[`filled_${index}`]) > 0);
      if (columns.length === 0) continue;
      refused.set(String(row._source_file), refusalForNewColumns(valid.tableName.quoted, columns));
    }
    if (refused.size > 0) throw new SchemaChangeError(refused);
  }

  /** One Spark job, one staged snapshot: append, or overwrite the rows of the batch's files. */
  async #writeStaged(
    batch: ValidatedBatch,
    rows: DataFrame,
    ingestedAt: IngestedAt,
    options: ExecutionOptions | undefined,
  ): Promise<void> {
    const evolving = batch.schemaEvolution === "addNewColumns";
    const condition = fn("in", col("_source_file"), ...batch.files.map((file) => lit(file)));
    let frame = rows;
    const cast = new Set<string>();
    for (;;) {
      const writer = frame.writeTo(batch.tableName.quoted).options({
        [`snapshot-property.${BATCH_ID_PROPERTY}`]: batch.batchId,
        [`snapshot-property.${INGESTED_AT_PROPERTY}`]: ingestedAt.iso,
        // New columns join the table's schema with this write. Columns are matched by name, not position,
        // also where Iceberg resolves them (a table an addNewColumns write made accept any schema, whose new
        // columns follow `_ingested_at`).
        ...(evolving ? { "merge-schema": "true" } : {}),
        ...(batch.schemaEvolution === undefined ? {} : { "check-ordering": "false" }),
      });
      try {
        if (batch.mode === "append") await writer.append(options);
        else await writer.overwrite(condition, options);
        return;
      } catch (error) {
        if (batch.mode === "replace" && isUnalignedOverwrite(error))
          throw unalignedReplaceError(batch, error);
        const conflict = columnTypeConflict(error);
        if (conflict === undefined) throw error;
        // Merging a schema, Iceberg refuses what Spark's own write would cast safely (a number into a
        // string column, an integer into a double one): cast that column to the table's type and write
        // again. The refusal comes before anything is written.
        const to = SAFE_CASTS[conflict.table];
        const nested = conflict.column.includes(".");
        if (
          !evolving ||
          nested ||
          to === undefined ||
          !to.from.has(conflict.file) ||
          cast.has(conflict.column)
        ) {
          throw schemaMismatchError(batch, conflict, error);
        }
        cast.add(conflict.column);
        frame = frame.withColumns({ [conflict.column]: fn(to.fn, col(conflict.column)) });
      }
    }
  }

  /** The staged snapshot of this batch (its wap id, batch id and ingestion instant in the summary). */
  async #findStaged(
    tableName: TableName,
    batchId: string,
    ingestedAtIso: string,
    options: ExecutionOptions | undefined,
  ): Promise<StagedSnapshot | undefined> {
    const table = tableName.quoted;
    // A write the table staged carries the wap id in its summary; one it committed at once does not (and is
    // current): telling them apart needs no scan of the table's history.
    const rows = await this.#spark.sql(
      `SELECT s.snapshot_id, s.parent_id, s.operation,
              s.summary['${INGESTED_AT_PROPERTY}'] AS ingested_at,
              s.summary['${STAGED_WAP_ID}'] IS NULL AS current
         FROM ${table}.\`snapshots\` AS s
        WHERE s.summary['${BATCH_ID_PROPERTY}'] = :batchId
          AND s.summary['${INGESTED_AT_PROPERTY}'] = :ingestedAt
          AND (s.summary['${STAGED_WAP_ID}'] = :batchId OR s.summary['${STAGED_WAP_ID}'] IS NULL)
        ORDER BY s.committed_at DESC
        LIMIT 1`,
      { batchId, ingestedAt: ingestedAtIso },
      options,
    );
    const row = rows[0];
    if (row === undefined) return undefined;
    return {
      snapshotId: idString(row.snapshot_id),
      parentId: row.parent_id === null || row.parent_id === undefined ? undefined : idString(row.parent_id),
      operation: String(row.operation),
      ingestedAt: typeof row.ingested_at === "string" ? parseMicros(row.ingested_at) : undefined,
      current: row.current === true,
    };
  }

  /**
   * Rows per `_source_file` from the snapshot's manifests alone, without reading a data file: possible when
   * every data file the snapshot added holds the rows of one source file (an isolated batch), which its
   * `_source_file` bounds show (lower = upper = one of the batch's URIs; the table keeps full bounds for the
   * column). Undefined when that does not hold for every file (a table created elsewhere with truncated
   * bounds, a delete file), and the caller counts by reading the rows instead. For 333 isolated files this
   * took 0.8 s where reading them took 2.5 s.
   */
  async #countFromMetadata(
    tableName: TableName,
    snapshot: StagedSnapshot,
    files: readonly string[],
    options: ExecutionOptions | undefined,
  ): Promise<Map<string, number> | undefined> {
    const id = snapshot.snapshotId;
    if (!/^-?\d{1,20}$/.test(id)) throw new Error(`bug: not a snapshot id: ${id}`);
    // The `entries` metadata table as of the snapshot: status 1 marks the files this snapshot added.
    const rows = await this.#spark.sql(
      `SELECT e.data_file.content AS content,
              e.data_file.record_count AS records,
              e.readable_metrics._source_file.lower_bound AS lower,
              e.readable_metrics._source_file.upper_bound AS upper
         FROM ${tableName.quoted}.\`entries\` VERSION AS OF ${id} AS e
        WHERE e.snapshot_id = ${id} AND e.status = 1`,
      undefined,
      options,
    );
    const records = new Map<string, number>();
    for (const file of files) records.set(file, 0);
    for (const row of rows) {
      const source = row.lower;
      if (row.content !== 0 || typeof source !== "string" || row.upper !== source) return undefined;
      const counted = records.get(source);
      if (counted === undefined) return undefined;
      records.set(source, counted + toCount(row.records));
    }
    return records;
  }

  /**
   * Rows per `_source_file` in the (staged) snapshot, read from the table (never from the source files
   * again). An append is read incrementally (parent → snapshot); a table's first snapshot by its id; an
   * overwrite, which an incremental read refuses, as of the snapshot filtered by the batch's
   * `_ingested_at` literal and its files.
   */
  async #countRecords(
    tableName: TableName,
    snapshot: StagedSnapshot,
    files: readonly string[],
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
      rows = this.#spark.sqlFrame(asOf(table, snapshot.snapshotId));
    } else {
      if (snapshot.ingestedAt === undefined) {
        throw new LakeferryError(
          "ICEBERG_SNAPSHOT_UNREADABLE",
          `${table}: snapshot ${snapshot.snapshotId} (${snapshot.operation}) has no ${INGESTED_AT_PROPERTY} mark to count its rows by`,
          { retryable: false },
        );
      }
      const condition = fn(
        "and",
        fn("==", col("_ingested_at"), fn("timestamp_micros", lit(snapshot.ingestedAt))),
        fn("in", col("_source_file"), ...files.map((file) => lit(file))),
      );
      rows = this.#spark.sqlFrame(asOf(table, snapshot.snapshotId)).filter(condition);
    }
    const counts = await rows
      .groupBy(col("_source_file"))
      .agg(fn("count", lit(1)).alias("records"))
      .collect(options);

    const records = new Map<string, number>();
    for (const file of files) records.set(file, 0);
    for (const row of counts) records.set(String(row._source_file), toCount(row.records));
    return records;
  }
}

/**
 * The table as of a snapshot, in the one form every supported runtime honours: SQL's `VERSION AS OF` (Spark
 * 3.5 ignores a `versionAsOf` read option; Iceberg's Spark 4.1 runtime refuses its own `snapshot-id`).
 */
function asOf(table: string, snapshotId: string): string {
  if (!/^-?\d{1,20}$/.test(snapshotId)) throw new Error(`bug: not a snapshot id: ${snapshotId}`);
  return `SELECT * FROM ${table} VERSION AS OF ${snapshotId}`;
}

function idString(value: unknown): string {
  if (typeof value === "bigint" || typeof value === "number" || typeof value === "string")
    return String(value);
  throw new LakeferryError("ICEBERG_UNEXPECTED_RESULT", `snapshot id of unexpected type ${typeof value}`, {
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

/**
 * Table column types (as Iceberg names them) into which a write's values of the listed types are cast
 * without loss of meaning, by the Spark function that casts to it.
 */
const SAFE_CASTS: Record<string, { fn: string; from: ReadonlySet<string> }> = {
  string: {
    fn: "string",
    from: new Set(["int", "long", "float", "double", "boolean", "date", "timestamp", "timestamptz"]),
  },
  double: { fn: "double", from: new Set(["int", "long", "float"]) },
};

function schemaMismatchError(
  batch: ValidatedBatch,
  conflict: { column: string; table: string; file: string },
  cause: unknown,
): LakeferryError {
  return new LakeferryError(
    "SCHEMA_MISMATCH",
    `column ${conflict.column} is ${conflict.table} in ${batch.tableName.quoted} and ${conflict.file} in the ` +
      "file: Iceberg widens a type only from int to long, float to double and to a larger decimal precision. " +
      "Fix the file, or declare the column's type in the ingestion's schema",
    { retryable: false, cause },
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
