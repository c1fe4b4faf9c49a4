import { InvalidInputError } from "@lakeferry/core";
import type { ExpressionMessage, LiteralMessage } from "./proto.ts";
import type { SqlArg } from "./types.ts";

const INT32_MAX = 2 ** 31 - 1;
const INT32_MIN = -(2 ** 31);
const INT64_MAX = 2n ** 63n - 1n;
const INT64_MIN = -(2n ** 63n);

/** A column expression, evaluated by Spark. Build one with `col`, `lit`, `expr` or `fn`. */
export class Column {
  /** The protocol expression. Internal to this package. */
  readonly expression: ExpressionMessage;

  /** @internal Use `col`, `lit`, `expr` or `fn`. */
  constructor(expression: ExpressionMessage) {
    this.expression = expression;
  }

  /** The same expression under a new output name. */
  alias(name: string): Column {
    requireText("alias", name);
    return new Column({ alias: { expr: this.expression, name: [name] } });
  }
}

/** A column by name. Dots select nested fields (`_metadata.file_path`); quote other names with backticks. */
export function col(name: string): Column {
  requireText("col", name);
  return new Column({ unresolvedAttribute: { unparsedIdentifier: name } });
}

/** A literal value (see SqlArg for the Spark type each JS value becomes). */
export function lit(value: SqlArg): Column {
  return new Column({ literal: toLiteral(value, "lit") });
}

/** A SQL expression parsed by Spark, e.g. `expr("amount * 2")` or `expr("count(*)")`. */
export function expr(sql: string): Column {
  requireText("expr", sql);
  return new Column({ expressionString: { expression: sql } });
}

/** A call of a Spark SQL function by name, e.g. `fn("count", lit(1))`, `fn("upper", col("name"))`. */
export function fn(name: string, ...args: Column[]): Column {
  requireText("fn", name);
  return new Column({
    unresolvedFunction: { functionName: name, arguments: args.map((arg) => arg.expression) },
  });
}

/** The protocol literal for a JS value; `field` names the argument in validation errors. */
export function toLiteral(value: SqlArg, field: string): LiteralMessage {
  if (value === null) return { null: { null: {} } };
  switch (typeof value) {
    case "string":
      return { string: value };
    case "boolean":
      return { boolean: value };
    case "bigint":
      if (value > INT64_MAX || value < INT64_MIN) {
        throw new InvalidInputError(field, `bigint ${value} does not fit in a 64-bit integer`);
      }
      return { long: value.toString() };
    case "number":
      if (Number.isInteger(value) && value >= INT32_MIN && value <= INT32_MAX) return { integer: value };
      if (Number.isSafeInteger(value)) return { long: String(value) };
      return { double: value };
    default:
      if (value instanceof Date) {
        const ms = value.getTime();
        if (Number.isNaN(ms)) throw new InvalidInputError(field, "invalid Date");
        return { timestamp: (BigInt(ms) * 1000n).toString() };
      }
      throw new InvalidInputError(field, `unsupported value of type ${typeof value}`);
  }
}

function requireText(field: string, value: unknown): void {
  if (typeof value !== "string" || value.trim() === "") {
    throw new InvalidInputError(field, "must be a non-empty string");
  }
}
