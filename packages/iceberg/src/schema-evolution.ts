import { LakeferryError } from "@lakeferry/core";
import { expr, quoteName, type DataFrame, type SchemaField } from "@lakeferry/spark-connect";
import { RefusedFilesError, type FileRefusal } from "./refused-files.ts";
import type { SchemaHint } from "./write-batch.ts";

/** The error type of a file skipped under `failOnNewColumns` until its new columns are approved. */
export const SCHEMA_CHANGE_PENDING = "SCHEMA_CHANGE_PENDING";

/** How a batch's files are read: the schema they are read with, and the shape given to their rows. */
export interface ReadPlan {
  /** Spark DDL the files are read with; Spark infers one when undefined. */
  declared: string | undefined;
  /** Applied to the rows (with `_source_file` and `_ingested_at`) before they are written. */
  shape?: (rows: DataFrame) => DataFrame;
}

/** A file skipped for the columns it has and the table lacks. */
export interface SchemaChangeRefusal extends FileRefusal {
  status: "SKIPPED";
  /** The new columns this file fills, as inferred (with the ingestion's hints). */
  columns: SchemaField[];
}

/** Files refused under `failOnNewColumns`: each is skipped, its new columns recorded for approval. */
export class SchemaChangeError extends RefusedFilesError<SchemaChangeRefusal> {
  constructor(refused: ReadonlyMap<string, SchemaChangeRefusal>) {
    super(SCHEMA_CHANGE_PENDING, "have columns the table lacks", refused);
  }
}

export function refusalForNewColumns(table: string, columns: SchemaField[]): SchemaChangeRefusal {
  const listed = columns.map((column) => `${column.name} ${column.type}`).join(", ");
  return {
    status: "SKIPPED",
    columns,
    message:
      `new column(s) not in ${table}: ${listed}; the file waits for approval: ` +
      "lakeferry schema diff NAME shows the change, lakeferry schema approve NAME adds the columns and ingests it",
  };
}

/** A column of the files that the table's own columns would read wrongly. */
export interface ColumnMismatch {
  column: string;
  fileType: string;
  tableColumn: string;
  tableType: string;
}

/**
 * The files' columns against the table's, by exact name (Spark matches JSON keys case-sensitively):
 * `added`, the columns the table lacks; `mismatch`, the first column the table's columns would read wrongly
 * (a name differing from a table column only in case, whose values would read as null; a nested type
 * differing from the table's, whose new fields would be dropped). Other type differences are left to the
 * read, which casts or refuses values as it does under `none`.
 */
export function compareColumns(
  inferred: readonly SchemaField[],
  table: readonly SchemaField[],
): { added: SchemaField[]; mismatch: ColumnMismatch | undefined } {
  const exact = new Map(table.map((column) => [column.name, column]));
  const folded = new Map(table.map((column) => [column.name.toLowerCase(), column]));
  const added: SchemaField[] = [];
  let mismatch: ColumnMismatch | undefined;
  for (const field of inferred) {
    const same = exact.get(field.name);
    const other = same ?? folded.get(field.name.toLowerCase());
    if (other === undefined) {
      added.push(field);
      continue;
    }
    const nestedChange = (isNested(field.type) || isNested(other.type)) && !sameType(field.type, other.type);
    if (same === undefined || nestedChange) {
      mismatch ??= {
        column: field.name,
        fileType: field.type,
        tableColumn: other.name,
        tableType: other.type,
      };
    }
  }
  return { added, mismatch };
}

export function columnMismatchError(table: string, mismatch: ColumnMismatch): LakeferryError {
  const reason =
    mismatch.column === mismatch.tableColumn
      ? `is ${mismatch.fileType} in the file and ${mismatch.tableType} in ${table}: read with the table's type, ` +
        "its fields the table lacks would be lost"
      : `differs only in case from ${table}'s ${mismatch.tableColumn}: Spark matches JSON keys by exact name, so ` +
        "its values would be lost";
  return new LakeferryError(
    "SCHEMA_MISMATCH",
    `column ${mismatch.column} ${reason}. Fix the file, or ingest it with schemaEvolution: rescue`,
    { retryable: false },
  );
}

/** The inferred columns with the hinted types put in; a hinted column no file has is added (nullable). */
export function withHints(inferred: SchemaField[], hints: SchemaHint[] | undefined): SchemaField[] {
  if (hints === undefined) return inferred;
  const hinted = new Map(hints.map((hint) => [hint.name.toLowerCase(), hint]));
  const fields = inferred.map((field) => {
    const hint = hinted.get(field.name.toLowerCase());
    return hint === undefined ? field : { ...field, type: hint.type };
  });
  const present = new Set(inferred.map((field) => field.name.toLowerCase()));
  for (const hint of hints) {
    if (!present.has(hint.name.toLowerCase()))
      fields.push({ name: hint.name, type: hint.type, nullable: true });
  }
  return fields;
}

/** A type's text compared loosely: DESCRIBE and AnalyzePlan spell nested field names differently. */
function sameType(a: string, b: string): boolean {
  const plain = (type: string): string => type.replaceAll("`", "").replaceAll(" ", "").toLowerCase();
  return plain(a) === plain(b);
}

function isNested(type: string): boolean {
  return /^(array|map|struct)\s*</i.test(type);
}

/** A Spark SQL string literal (backslash escapes are on by default). */
function sqlString(text: string): string {
  return `'${text.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

/**
 * Shapes rows read with the files' own columns (`file`) to the table's (`table`, the rescued-data column
 * not among them) under `rescue`: a column whose type differs is cast where Spark can (`try_cast`), and a
 * value that does not survive the cast, like every column the table lacks, goes to `rescued` as a JSON
 * object with the file's URI under `_file`. Rows with nothing to rescue have it null.
 */
export function rescueShape(
  rows: DataFrame,
  file: readonly SchemaField[],
  table: readonly SchemaField[],
  rescued: string,
): DataFrame {
  const byName = new Map(file.map((field) => [field.name.toLowerCase(), field]));
  const inTable = new Set(table.map((column) => column.name.toLowerCase()));
  const values: string[] = [];
  const misfits: string[] = [];
  const kept: string[] = [];
  for (const column of table) {
    const field = byName.get(column.name.toLowerCase());
    if (field === undefined) {
      values.push(`CAST(NULL AS ${column.type})`);
      continue;
    }
    const ref = quoteName(field.name);
    if (sameType(field.type, column.type)) {
      values.push(ref);
      continue;
    }
    // Nested types are not cast (a struct cast matches fields by position): such a value is rescued whole.
    const cast =
      isNested(field.type) || isNested(column.type) ? undefined : `try_cast(${ref} AS ${column.type})`;
    // A cast that succeeds may still change the value (1.5 into a bigint is 1, a timestamp into a date
    // loses its time): unless the file's value is text, the value must survive the cast back.
    const lossless =
      cast === undefined || field.type === "string" ? "" : ` OR try_cast(${cast} AS ${field.type}) <> ${ref}`;
    const misfit =
      cast === undefined ? `${ref} IS NOT NULL` : `(${ref} IS NOT NULL AND (${cast} IS NULL${lossless}))`;
    values.push(cast ?? `CAST(NULL AS ${column.type})`);
    misfits.push(misfit);
    kept.push(`${sqlString(field.name)}, CASE WHEN ${misfit} THEN ${ref} END`);
  }
  for (const field of file) {
    // A file column named like the rescued-data column is not the table's: it is rescued like any other.
    if (inTable.has(field.name.toLowerCase())) continue;
    const ref = quoteName(field.name);
    misfits.push(`${ref} IS NOT NULL`);
    kept.push(`${sqlString(field.name)}, ${ref}`);
  }
  const rescuedValue =
    misfits.length === 0
      ? "CAST(NULL AS STRING)"
      : `CASE WHEN ${misfits.join(" OR ")} THEN to_json(named_struct(${kept.join(", ")}, '_file', _source_file)) END`;
  return rows.select(
    ...table.map((column, index) => expr(values[index] as string).alias(column.name)),
    expr(rescuedValue).alias(rescued),
    expr("_source_file"),
    expr("_ingested_at"),
  );
}
