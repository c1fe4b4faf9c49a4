import { InvalidInputError } from "@lakeferry/core";
import {
  Int64,
  Table,
  TimestampMicrosecond,
  Utf8,
  tableToIPC,
  vectorFromArray,
  type DataType,
  type Vector,
} from "apache-arrow";

/** A column of rows sent from the client: `string`, `long` (BIGINT) or `timestamp` (UTC, microseconds). */
export interface LocalColumn {
  name: string;
  type: "string" | "long" | "timestamp";
}

/** A value of a local row: a string, a whole number (number or bigint), a Date, or null. */
export type LocalValue = string | number | bigint | Date | null;

/**
 * Encodes rows as one Arrow IPC stream with one column per `schema` entry, as a LocalRelation carries them.
 * @throws InvalidInputError for a column name used twice, or a value that does not fit its column's type.
 */
export function arrowIpcFromRows(
  rows: readonly Record<string, LocalValue>[],
  schema: readonly LocalColumn[],
): Uint8Array {
  if (schema.length === 0) throw new InvalidInputError("schema", "needs at least one column");
  const names = new Set<string>();
  const vectors: Record<string, Vector<DataType>> = {};
  for (const column of schema) {
    if (typeof column.name !== "string" || column.name === "" || names.has(column.name)) {
      throw new InvalidInputError("schema", `column names must be non-empty and distinct (${column.name})`);
    }
    names.add(column.name);
    vectors[column.name] = columnVector(column, rows);
  }
  return tableToIPC(new Table(vectors), "stream");
}

function columnVector(column: LocalColumn, rows: readonly Record<string, LocalValue>[]): Vector<DataType> {
  const values = rows.map((row, i) => {
    const value = row[column.name] ?? null;
    if (value === null) return null;
    const bad = (): never => {
      throw new InvalidInputError(
        `rows[${i}].${column.name}`,
        `must be a ${column.type === "long" ? "whole number" : column.type === "timestamp" ? "valid Date" : "string"} or null`,
      );
    };
    switch (column.type) {
      case "string":
        return typeof value === "string" ? value : bad();
      case "long":
        if (typeof value === "bigint") return value;
        return typeof value === "number" && Number.isSafeInteger(value) ? BigInt(value) : bad();
      case "timestamp":
        return value instanceof Date && !Number.isNaN(value.getTime()) ? value : bad();
    }
  });
  switch (column.type) {
    case "string":
      return vectorFromArray(values as (string | null)[], new Utf8());
    case "long":
      return vectorFromArray(values as (bigint | null)[], new Int64());
    case "timestamp":
      return vectorFromArray(values as (Date | null)[], new TimestampMicrosecond("UTC"));
    default:
      throw new InvalidInputError("schema", `column ${String(column.name)} has an unknown type`);
  }
}
