import { status } from "@grpc/grpc-js";
import { SparkConnectError } from "./errors.ts";
import type { DataTypeMessage } from "./proto.ts";

/** One column of a DataFrame's schema; `type` is Spark's DDL type text (`bigint`, `struct<a:int>`, …). */
export interface SchemaField {
  name: string;
  type: string;
  nullable: boolean;
}

/** A DataFrame's columns, in order, as AnalyzePlan reports them. */
export interface Schema {
  fields: SchemaField[];
}

/** A name as DDL spells it: backquoted, inner backquotes doubled. */
export function quoteName(name: string): string {
  return `\`${name.replaceAll("`", "``")}\``;
}

/** The schema as a DDL column list (`` `a` bigint, `b` string ``), which `read({schema})` accepts. */
export function schemaDdl(fields: readonly SchemaField[]): string {
  return fields.map((field) => `${quoteName(field.name)} ${field.type}`).join(", ");
}

/** The fields of a plan's output type (a struct); any other type is a protocol surprise. */
export function schemaOf(type: DataTypeMessage | undefined): Schema {
  if (type?.struct === undefined) {
    throw new SparkConnectError("Spark Connect described a plan's output as something other than a struct", {
      grpcCode: status.OK,
      retryable: false,
    });
  }
  return {
    fields: (type.struct.fields ?? []).map((field) => ({
      name: field.name ?? "",
      type: typeText(field.dataType),
      nullable: field.nullable === true,
    })),
  };
}

const PLAIN: readonly [keyof DataTypeMessage, string][] = [
  ["null", "void"],
  ["binary", "binary"],
  ["boolean", "boolean"],
  ["byte", "tinyint"],
  ["short", "smallint"],
  ["integer", "int"],
  ["long", "bigint"],
  ["float", "float"],
  ["double", "double"],
  ["string", "string"],
  ["date", "date"],
  ["timestamp", "timestamp"],
  ["timestampNtz", "timestamp_ntz"],
  ["calendarInterval", "interval"],
  ["variant", "variant"],
];

const YEAR_MONTH = ["year", "month"];
const DAY_TIME = ["day", "hour", "minute", "second"];

/** Spark's DDL text for a type; a kind this client does not know reads as `unknown`. */
export function typeText(type: DataTypeMessage | undefined): string {
  if (type === undefined) return "unknown";
  for (const [kind, text] of PLAIN) if (type[kind] !== undefined) return text;
  if (type.decimal) return `decimal(${type.decimal.precision ?? 10},${type.decimal.scale ?? 0})`;
  if (type.char) return `char(${type.char.length ?? 1})`;
  if (type.varChar) return `varchar(${type.varChar.length ?? 1})`;
  if (type.yearMonthInterval) return intervalText(type.yearMonthInterval, YEAR_MONTH);
  if (type.dayTimeInterval) return intervalText(type.dayTimeInterval, DAY_TIME);
  if (type.array) return `array<${typeText(type.array.elementType)}>`;
  if (type.map) return `map<${typeText(type.map.keyType)},${typeText(type.map.valueType)}>`;
  if (type.struct) {
    const fields = (type.struct.fields ?? []).map(
      (field) => `${quoteName(field.name ?? "")}:${typeText(field.dataType)}`,
    );
    return `struct<${fields.join(",")}>`;
  }
  return "unknown";
}

function intervalText(interval: { startField?: number; endField?: number }, units: string[]): string {
  const start = units[interval.startField ?? 0] ?? units[0];
  const end = units[interval.endField ?? units.length - 1] ?? start;
  return start === end ? `interval ${start}` : `interval ${start} to ${end}`;
}
