import { InvalidInputError } from "@lakeferry/core";
import { splitTopLevel } from "./ddl-list.ts";
import { CORRUPT_RECORD_COLUMN, isTolerant, ON_ERROR_VALUES, type BadRecordsPolicy } from "./bad-records.ts";

/** The file formats Spark reads for a batch (Spark DataSource names). */
export const FILE_FORMATS = ["json", "csv", "parquet", "orc", "avro", "text"] as const;
export type FileFormat = (typeof FILE_FORMATS)[number];

/** Files claimed together for one table: read by ONE Spark job and committed as ONE Iceberg snapshot. */
export interface WriteBatch {
  /** Unique id of this batch (a UUID); marks the snapshot summary so a retry can find the commit. */
  batchId: string;
  /** `catalog.namespace.table`, each part `[A-Za-z_][A-Za-z0-9_]*`. */
  table: string;
  /** How Spark reads the files. */
  format: FileFormat;
  /** Spark DDL of the files' columns (`id BIGINT, name STRING`); inferred by Spark when absent. */
  schema?: string;
  /**
   * Spark reader options (keys `[A-Za-z0-9_.-]+`). For json and csv `mode` defaults to `FAILFAST`, so a
   * malformed record fails the batch instead of becoming nulls.
   */
  options?: Record<string, string>;
  /** File URIs exactly as the caller has them (`file:///…`, `s3://…`); `_source_file` carries them. */
  files: string[];
  /**
   * What a file's columns may do to the table (default: nothing; they must match the table's):
   * - `addNewColumns`: columns the table lacks are added to it by the write itself, and a column's type
   *   widened where Iceberg allows it (int → long, float → double, decimal precision); another type change
   *   fails the write with `SCHEMA_MISMATCH` naming the column and both types. Columns a file lacks are null.
   * - `none`: the table's columns never change. Without a declared `schema` the files are read with the
   *   table's own columns (once it exists): columns the table lacks are left out, those a file lacks are null.
   * - `rescue`: the table's columns never change (the first batch creates the table with its files' columns
   *   and the rescued-data column); a value that does not fit its column's type, and every column the table
   *   lacks, go to the rescued-data column as JSON with the file's URI under `_file`.
   * - `failOnNewColumns`: a file with a value in a column the table lacks is refused ({@link
   *   SchemaChangeError}, the file is skipped with its new columns named) until the columns are approved
   *   ({@link IcebergWriter.addColumns}); the others are read with the table's own columns, as under `none`.
   */
  schemaEvolution?: SchemaEvolution;
  /**
   * Types for some inferred columns (Spark DDL, `id BIGINT, price DECIMAL(10,2)`): inference decides the
   * others; a hinted column no file has is added (null). Ignored with a declared `schema`.
   */
  schemaHints?: string;
  /** The rescued-data column under `rescue` (a STRING column of the table). Default `_rescued_data`. */
  rescuedDataColumn?: string;
  /**
   * `append` (default) adds the files' rows. `replace` removes the rows whose `_source_file` is one of
   * `files` and adds the new ones in the same commit: used when a file was modified after it was ingested.
   */
  mode?: "append" | "replace";
  /**
   * The path Spark reads each file by, in the order of `files` (e.g. `s3a://b/k` for `s3://b/k`). Default:
   * the writer's `sparkPath` mapping. `_source_file` always carries the URI of `files`.
   */
  readPaths?: string[];
  /**
   * Keep each source file's rows in data files of their own (needed to `replace` a file's rows later).
   * Default: the writer's `isolateSourceFiles`.
   */
  isolateFiles?: boolean;
  /**
   * The `_ingested_at` value of every row, in µs since the epoch; recovery recognises the batch's rows by
   * it (with `_source_file`). Default: now.
   */
  ingestedAtMicros?: bigint;
  /**
   * What a malformed JSON or CSV record does to its file (see {@link BadRecordsPolicy}). Default
   * `abortFile`: read in FAILFAST, the first bad record fails the batch.
   */
  badRecords?: BadRecordsPolicy;
}

export const SCHEMA_EVOLUTIONS = ["addNewColumns", "rescue", "failOnNewColumns", "none"] as const;
export type SchemaEvolution = (typeof SCHEMA_EVOLUTIONS)[number];

/** A table name split into its parts, with the backtick-quoted form used in SQL and plans. */
export interface TableName {
  catalog: string;
  namespace: string;
  table: string;
  /** `` `catalog`.`namespace`.`table` `` */
  quoted: string;
}

/** A batch after validation, with defaults applied. */
export interface ValidatedBatch {
  batchId: string;
  tableName: TableName;
  format: FileFormat;
  schema: string | undefined;
  /** Reader options, `mode=FAILFAST` added for json/csv unless the caller chose a mode. */
  options: Record<string, string>;
  files: string[];
  mode: "append" | "replace";
  schemaEvolution: SchemaEvolution | undefined;
  /** Parsed `schemaHints` (undefined with a declared schema). */
  schemaHints: SchemaHint[] | undefined;
  rescuedDataColumn: string;
  readPaths: string[] | undefined;
  isolateFiles: boolean | undefined;
  ingestedAtMicros: bigint | undefined;
  /** Set when the batch reads in PERMISSIVE mode and sets bad records apart (json/csv, not abortFile). */
  badRecords: BadRecordsPolicy | undefined;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const OPTION_KEY = /^[A-Za-z0-9_.-]+$/;
const BATCH_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
// Characters Hadoop paths cannot carry faithfully (and that no listing of real objects should yield).
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f]/;
/** Reader options that would change which files are read. */
const FORBIDDEN_OPTIONS = new Set(["path", "paths"]);

/** Parses and validates `catalog.namespace.table`; throws InvalidInputError naming `field`. */
export function parseTableName(name: unknown, field = "table"): TableName {
  if (typeof name !== "string") throw new InvalidInputError(field, "must be a string");
  const parts = name.split(".");
  if (parts.length !== 3 || !parts.every((part) => IDENTIFIER.test(part))) {
    throw new InvalidInputError(
      field,
      `${JSON.stringify(name)} is not catalog.namespace.table with each part matching [A-Za-z_][A-Za-z0-9_]*`,
    );
  }
  const [catalog, namespace, table] = parts as [string, string, string];
  return { catalog, namespace, table, quoted: parts.map((part) => `\`${part}\``).join(".") };
}

/** Validates a batch id; throws InvalidInputError. */
export function validateBatchId(batchId: unknown, field = "batchId"): string {
  if (typeof batchId !== "string" || !BATCH_ID.test(batchId)) {
    throw new InvalidInputError(field, "must be 1-128 characters of [A-Za-z0-9_.:-] (a UUID)");
  }
  return batchId;
}

/**
 * Validates everything about a batch that can be checked without Spark, so bad input is refused before
 * any job runs. Returns the batch with defaults applied (mode, FAILFAST).
 */
export function validateWriteBatch(batch: WriteBatch): ValidatedBatch {
  if (batch === null || typeof batch !== "object") throw new InvalidInputError("batch", "must be an object");
  const batchId = validateBatchId(batch.batchId);
  const tableName = parseTableName(batch.table);
  if (!(FILE_FORMATS as readonly string[]).includes(batch.format)) {
    throw new InvalidInputError("format", `must be one of ${FILE_FORMATS.join(", ")}`);
  }
  const mode = batch.mode ?? "append";
  if (mode !== "append" && mode !== "replace") {
    throw new InvalidInputError("mode", 'must be "append" or "replace"');
  }
  const schemaEvolution = batch.schemaEvolution;
  if (schemaEvolution !== undefined && !(SCHEMA_EVOLUTIONS as readonly string[]).includes(schemaEvolution)) {
    throw new InvalidInputError("schemaEvolution", `must be one of ${SCHEMA_EVOLUTIONS.join(", ")}`);
  }
  if (batch.schema !== undefined && (typeof batch.schema !== "string" || batch.schema.trim() === "")) {
    throw new InvalidInputError("schema", "must be a non-empty DDL string when given");
  }
  const schemaHints =
    batch.schemaHints === undefined || batch.schema !== undefined
      ? undefined
      : parseSchemaHints(batch.schemaHints);
  const rescuedDataColumn = batch.rescuedDataColumn ?? DEFAULT_RESCUED_DATA_COLUMN;
  if (typeof rescuedDataColumn !== "string" || !IDENTIFIER.test(rescuedDataColumn)) {
    throw new InvalidInputError("rescuedDataColumn", "must match [A-Za-z_][A-Za-z0-9_]*");
  }
  const options: Record<string, string> = {};
  for (const [key, value] of Object.entries(batch.options ?? {})) {
    if (!OPTION_KEY.test(key))
      throw new InvalidInputError(`options.${key}`, "key must match [A-Za-z0-9_.-]+");
    if (FORBIDDEN_OPTIONS.has(key.toLowerCase())) {
      throw new InvalidInputError(`options.${key}`, "paths are given by `files`, not by reader options");
    }
    if (typeof value !== "string") throw new InvalidInputError(`options.${key}`, "value must be a string");
    options[key] = value;
  }
  const badRecords = validateBadRecords(batch.badRecords);
  const tolerant = isTolerant(batch.format, badRecords);
  if (tolerant) {
    // Bad records are kept (in the corrupt-record column) and set apart; lakeferry owns these two options.
    for (const key of Object.keys(options)) {
      if (["mode", "columnnameofcorruptrecord"].includes(key.toLowerCase())) delete options[key];
    }
    options.mode = "PERMISSIVE";
    options.columnNameOfCorruptRecord = CORRUPT_RECORD_COLUMN;
  } else if ((batch.format === "json" || batch.format === "csv") && !hasKey(options, "mode")) {
    options.mode = "FAILFAST";
  }
  if (!Array.isArray(batch.files) || batch.files.length === 0) {
    throw new InvalidInputError("files", "must be a non-empty array of file URIs");
  }
  batch.files.forEach((file, index) => validateFileUri(file, `files[${index}]`));
  if (batch.readPaths !== undefined) {
    if (!Array.isArray(batch.readPaths) || batch.readPaths.length !== batch.files.length) {
      throw new InvalidInputError("readPaths", "must have one path per file, in the order of `files`");
    }
    batch.readPaths.forEach((path, index) => {
      if (typeof path !== "string" || path === "")
        throw new InvalidInputError(`readPaths[${index}]`, "must be a non-empty string");
    });
  }
  if (
    batch.ingestedAtMicros !== undefined &&
    (typeof batch.ingestedAtMicros !== "bigint" || batch.ingestedAtMicros <= 0n)
  ) {
    throw new InvalidInputError("ingestedAtMicros", "must be a positive bigint (µs since the epoch)");
  }
  return {
    batchId,
    tableName,
    format: batch.format,
    schema: batch.schema,
    options,
    files: [...batch.files],
    mode,
    schemaEvolution,
    schemaHints,
    rescuedDataColumn,
    readPaths: batch.readPaths === undefined ? undefined : [...batch.readPaths],
    isolateFiles: batch.isolateFiles,
    ingestedAtMicros: batch.ingestedAtMicros,
    badRecords: tolerant ? badRecords : undefined,
  };
}

/** The rescued-data column's name unless the ingestion names another. */
export const DEFAULT_RESCUED_DATA_COLUMN = "_rescued_data";

/** One column of `schemaHints`: its name (unquoted) and Spark DDL type. */
export interface SchemaHint {
  name: string;
  type: string;
}

// The types a hint may name: Spark's type keywords, parameterised ones and nested ones.
const HINT_TYPE =
  /^(boolean|tinyint|byte|smallint|short|int|integer|bigint|long|float|real|double|string|binary|date|timestamp|timestamp_ntz|timestamp_ltz|variant|(decimal|dec|numeric)(\(\s*\d+\s*(,\s*\d+\s*)?\))?|(char|varchar)\(\s*\d+\s*\)|(array|map|struct)\s*<.*>)$/i;

/**
 * Parses `schemaHints` (`id BIGINT, price DECIMAL(10,2), tags ARRAY<STRING>`): top-level commas separate
 * columns (not those inside `<>` or `()`), a name may be backquoted.
 * @throws InvalidInputError naming the hint that is not `name TYPE`.
 */
export function parseSchemaHints(text: unknown, field = "schemaHints"): SchemaHint[] {
  if (typeof text !== "string" || text.trim() === "") {
    throw new InvalidInputError(
      field,
      'must be a non-empty list of `name TYPE`, e.g. "id BIGINT, price DOUBLE"',
    );
  }
  const hints: SchemaHint[] = [];
  for (const part of splitTopLevel(text)) {
    const match = /^\s*(?:`((?:[^`]|``)+)`|([A-Za-z_][A-Za-z0-9_]*))\s+(.+?)\s*$/s.exec(part);
    const name = match?.[1]?.replaceAll("``", "`") ?? match?.[2];
    const type = match?.[3];
    if (name === undefined || type === undefined || !HINT_TYPE.test(type)) {
      throw new InvalidInputError(
        field,
        `${JSON.stringify(part.trim())} is not \`name TYPE\` with a Spark type (BIGINT, DOUBLE, DECIMAL(10,2), STRING, ARRAY<STRING>, …)`,
      );
    }
    if (hints.some((hint) => hint.name.toLowerCase() === name.toLowerCase())) {
      throw new InvalidInputError(field, `column ${name} is hinted twice`);
    }
    hints.push({ name, type: type.toLowerCase() });
  }
  return hints;
}

function validateBadRecords(policy: BadRecordsPolicy | undefined): BadRecordsPolicy | undefined {
  if (policy === undefined) return undefined;
  if (policy === null || typeof policy !== "object" || !ON_ERROR_VALUES.includes(policy.onError)) {
    throw new InvalidInputError("badRecords.onError", `must be one of ${ON_ERROR_VALUES.join(", ")}`);
  }
  const max = policy.maxBadRecords;
  if (max === undefined) return { onError: policy.onError };
  if (policy.onError === "abortFile") {
    throw new InvalidInputError(
      "badRecords.maxBadRecords",
      "abortFile fails a file at its first bad record; give maxBadRecords with continue or skipFile",
    );
  }
  if ("count" in max) {
    if (!Number.isSafeInteger(max.count) || max.count < 0) {
      throw new InvalidInputError("badRecords.maxBadRecords", "a count must be a whole number ≥ 0");
    }
    return { onError: policy.onError, maxBadRecords: { count: max.count } };
  }
  if (!(typeof max.percent === "number" && max.percent >= 0 && max.percent <= 100)) {
    throw new InvalidInputError("badRecords.maxBadRecords", "a percentage must be between 0 and 100");
  }
  return { onError: policy.onError, maxBadRecords: { percent: max.percent } };
}

function validateFileUri(file: unknown, field: string): void {
  if (typeof file !== "string" || file === "")
    throw new InvalidInputError(field, "must be a non-empty string");
  if (CONTROL_CHARACTERS.test(file))
    throw new InvalidInputError(field, "must not contain control characters");
  if (file.endsWith("/"))
    throw new InvalidInputError(field, `${JSON.stringify(file)} names a folder, not a file`);
  // Hadoop normalises `.` and `..` segments away, so such a path would read another object than the one named.
  const path = file.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/]*/, "");
  if (path.split("/").some((segment) => segment === "." || segment === "..")) {
    throw new InvalidInputError(field, `${JSON.stringify(file)} has a "." or ".." segment`);
  }
}

function hasKey(record: Record<string, string>, key: string): boolean {
  return Object.keys(record).some((candidate) => candidate.toLowerCase() === key);
}
