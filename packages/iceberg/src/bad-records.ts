import { col, expr, fn, lit, type Column } from "@lakeferry/spark-connect";
import { splitTopLevel } from "./ddl-list.ts";
import { RefusedFilesError, type FileRefusal } from "./refused-files.ts";
import type { FileFormat, TableName } from "./write-batch.ts";

/**
 * What a malformed record (a JSON or CSV record Spark cannot parse, or whose values do not fit the schema)
 * does to its file:
 * - `abortFile`: the file fails at its first bad record (read in FAILFAST); nothing of it lands;
 * - `skipFile`: a file with more bad records than `maxBadRecords` (default 0) is SKIPPED, nothing of it
 *   lands; within the limit it lands like under `continue`;
 * - `continue`: the good records land in the table and the bad ones in the quarantine table
 *   (`<table>__rejected`), in the same batch; a file with more than `maxBadRecords` (default: no limit) fails.
 */
export type OnError = "abortFile" | "skipFile" | "continue";

export const ON_ERROR_VALUES: readonly OnError[] = ["abortFile", "skipFile", "continue"];

/** How many bad records a file may have: a count, or a percentage of the records parsed in it. */
export type MaxBadRecords = { count: number } | { percent: number };

/** A batch's bad-record policy. Parquet, ORC, Avro and text files have no per-record errors: it is ignored. */
export interface BadRecordsPolicy {
  onError: OnError;
  /** Beyond this the file fails (`continue`) or is SKIPPED (`skipFile`). Not allowed with `abortFile`. */
  maxBadRecords?: MaxBadRecords;
}

/** Records of one file as the tolerant read saw them. */
export interface FileRecordCounts {
  /** Records Spark parsed (good and bad). */
  parsed: number;
  /** Records that did not parse or did not fit the schema. */
  rejected: number;
  /** The first bad record: `record N: what is wrong: the record's text` (cut to 1,000 characters). */
  firstError?: string;
}

/** The column Spark's PERMISSIVE mode puts a malformed record's text in; never one of a table's. */
export const CORRUPT_RECORD_COLUMN = "_lakeferry_corrupt_record";
/** The record's 1-based position among its file's records (before the bad ones are set apart). */
const RECORD_NUMBER_COLUMN = "_lakeferry_record_number";

/** Suffix of the quarantine table's name: `lake.sales.orders` keeps its rejected records in `lake.sales.orders__rejected`. */
export const REJECTED_TABLE_SUFFIX = "__rejected";

/** The quarantine table of `table` (`catalog.namespace.table__rejected`). */
export function rejectedTableOf(table: string): string {
  return `${table}${REJECTED_TABLE_SUFFIX}`;
}

/** Whether the batch reads in PERMISSIVE mode and sets bad records apart (json and csv, not abortFile). */
export function isTolerant(format: FileFormat, policy: BadRecordsPolicy | undefined): boolean {
  return policy !== undefined && policy.onError !== "abortFile" && (format === "json" || format === "csv");
}

/** The most bad records a file may have under the policy (Infinity: no limit). */
export function badRecordLimit(policy: BadRecordsPolicy, parsed: number): number {
  const max = policy.maxBadRecords;
  if (max === undefined) return policy.onError === "continue" ? Infinity : 0;
  if ("count" in max) return max.count;
  // The tolerance keeps a product such as 0.57 % of 10,000 (56.99999999999999 in floating point) at 57.
  return Math.floor((parsed * max.percent) / 100 + 1e-9);
}

/** `100`, or `1%`: the policy's limit as the user wrote it. */
export function describeMaxBadRecords(policy: BadRecordsPolicy): string {
  const max = policy.maxBadRecords;
  if (max === undefined) return policy.onError === "continue" ? "no limit" : "0";
  return "count" in max ? String(max.count) : `${max.percent}%`;
}

/** What becomes of a file whose bad records are beyond its limit. */
export interface RefusedFile extends FileRefusal {
  /** SKIPPED under `skipFile`, FAILED under `continue`. */
  status: "SKIPPED" | "FAILED";
  counts: FileRecordCounts;
}

/**
 * Files of a batch with more bad records than their ingestion allows: nothing of the batch was written. Each
 * named file settles as its entry says (`BAD_RECORDS`, not retried: reading it again finds the same records);
 * the batch's other files are written again without them.
 */
export class BadRecordsError extends RefusedFilesError<RefusedFile> {
  constructor(refused: ReadonlyMap<string, RefusedFile>) {
    super("BAD_RECORDS", "have more bad records than allowed", refused);
  }
}

/** One file's refusal under the policy, or undefined when its bad records are within the limit. */
export function refusalOf(policy: BadRecordsPolicy, counts: FileRecordCounts): RefusedFile | undefined {
  if (counts.rejected === 0 || counts.rejected <= badRecordLimit(policy, counts.parsed)) return undefined;
  const skip = policy.onError === "skipFile";
  const limit = describeMaxBadRecords(policy);
  const message =
    `${counts.rejected} of ${counts.parsed} records are bad, more than maxBadRecords (${limit}); ` +
    `${skip ? "the file is skipped" : "the file fails"} and nothing of it lands. First: ${counts.firstError ?? "unknown"}. ` +
    `Fix the file (or raise maxBadRecords) and run lakeferry retry NAME --file PATH`;
  return { status: skip ? "SKIPPED" : "FAILED", counts, message };
}

/**
 * The top-level column names of a Spark DDL schema (`id BIGINT, tags ARRAY<STRING>, s STRUCT<a: INT>`),
 * backticks removed; commas inside `<>` or `()` do not separate columns.
 */
export function topLevelColumns(ddl: string): string[] {
  return splitTopLevel(ddl).flatMap((column) => {
    const match = /^`((?:[^`]|``)+)`|^([^\s:]+)/.exec(column.trim());
    const name = match?.[1]?.replaceAll("``", "`") ?? match?.[2];
    return name === undefined || name === "" ? [] : [name];
  });
}

/** A column reference for a top-level name, quoted for Spark's parser. */
function quotedColumn(name: string): Column {
  return col(`\`${name.replaceAll("`", "``")}\``);
}

/** The JSON path of a top-level field in `get_json_object` (bracket form for any name). */
function jsonPath(name: string): string {
  return `$['${name.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}']`;
}

/**
 * What is wrong with a bad record, as a Spark expression over its row. JSON: `malformed JSON` when the text
 * is not JSON at all, else the declared columns whose value is present in the text but null after parsing.
 * CSV: the declared columns that came out null though the schema has them (wrong field count or type).
 *
 * The expression also reads every column of the row: Spark refuses a query over raw JSON/CSV that needs
 * only the corrupt-record column (and with fewer columns parsed, fewer records would be found bad), so a
 * schema that is not declared is covered by a hash of the whole row that adds nothing to the text.
 */
export function recordErrorColumn(format: FileFormat, schema: string | undefined): Column {
  const raw = col(CORRUPT_RECORD_COLUMN);
  const names = schema === undefined ? [] : topLevelColumns(schema);
  const misfits =
    names.length === 0
      ? lit("")
      : fn(
          "concat_ws",
          lit(", "),
          ...names.map((name) =>
            fn(
              "if",
              format === "json"
                ? fn(
                    "and",
                    fn("isnull", quotedColumn(name)),
                    fn("isnotnull", fn("get_json_object", raw, lit(jsonPath(name)))),
                  )
                : fn("isnull", quotedColumn(name)),
              lit(name),
              lit(null),
            ),
          ),
        );
  const described = fn(
    "if",
    fn("==", misfits, lit("")),
    lit(format === "json" ? "does not fit the schema" : "malformed CSV record (field count or a value)"),
    fn(
      "concat",
      lit(format === "json" ? "value does not fit the schema in column(s) " : "no value for column(s) "),
      misfits,
    ),
  );
  const error =
    format === "json"
      ? fn("if", fn("isnull", fn("get_json_object", raw, lit("$"))), lit("malformed JSON"), described)
      : described;
  // left(…, 0) is always '', but Spark cannot know it without reading every column.
  return schema === undefined
    ? fn("concat", error, fn("left", fn("string", expr("hash(*)")), lit(0)))
    : error;
}

/** The record's 1-based position in its file: the read gives each file one Spark partition of its own. */
export function recordNumberColumn(): Column {
  return fn("+", fn("&", fn("monotonically_increasing_id"), lit(2n ** 33n - 1n)), lit(1n));
}

/** Adds the record number; must come before any filter (it counts the rows its partition has seen). */
export const RECORD_NUMBER = RECORD_NUMBER_COLUMN;

/** A bad record's row in the quarantine table. */
export function rejectedColumns(
  format: FileFormat,
  schema: string | undefined,
  batchId: string,
  ingestedAtMicros: bigint,
): Column[] {
  return [
    col(CORRUPT_RECORD_COLUMN).alias("raw_record"),
    fn("string", recordErrorColumn(format, schema)).alias("error"),
    col(RECORD_NUMBER_COLUMN).alias("record_number"),
    col("_source_file").alias("_source_file"),
    lit(batchId).alias("_batch_id"),
    fn("timestamp_micros", lit(ingestedAtMicros)).alias("_ingested_at"),
  ];
}

/** Per-file census aggregates: records parsed, bad ones, and the first bad one (number, error, text). */
export function censusAggregates(format: FileFormat, schema: string | undefined): Column[] {
  const bad = fn("isnotnull", col(CORRUPT_RECORD_COLUMN));
  return [
    fn("count", lit(1)).alias("parsed"),
    fn("count_if", bad).alias("rejected"),
    fn(
      "min",
      fn(
        "if",
        bad,
        fn(
          "struct",
          col(RECORD_NUMBER_COLUMN).alias("n"),
          recordErrorColumn(format, schema).alias("error"),
          fn("left", col(CORRUPT_RECORD_COLUMN), lit(1000)).alias("raw"),
        ),
        lit(null),
      ),
    ).alias("first"),
  ];
}

/** `record 3: malformed JSON: {"id":2` from the census's `first` struct. */
export function firstErrorText(first: unknown): string | undefined {
  if (first === null || typeof first !== "object") return undefined;
  const { n, error, raw } = first as { n?: unknown; error?: unknown; raw?: unknown };
  return `record ${String(n)}: ${String(error)}: ${String(raw)}`.slice(0, 1000);
}

/** The quarantine table's name parts from its table's. */
export function rejectedTableName(table: TableName): TableName {
  const name = `${table.table}${REJECTED_TABLE_SUFFIX}`;
  return {
    catalog: table.catalog,
    namespace: table.namespace,
    table: name,
    quoted: `\`${table.catalog}\`.\`${table.namespace}\`.\`${name}\``,
  };
}
