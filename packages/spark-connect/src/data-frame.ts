import { InvalidInputError } from "@lakeferry/core";
import { col, fn, lit, type Column } from "./column.ts";
import {
  GROUP_TYPE_GROUPBY,
  SET_OP_TYPE_UNION,
  WriteMode,
  type CommandMessage,
  type RelationMessage,
} from "./proto.ts";
import type { Schema } from "./schema.ts";
import type { ExecutionOptions, Row } from "./types.ts";

/** @internal What a DataFrame needs from the client that made it. */
export interface PlanRunner {
  collectRelation(relation: RelationMessage, options?: ExecutionOptions): Promise<Row[]>;
  runCommand(command: CommandMessage, options?: ExecutionOptions): Promise<void>;
  analyzeSchema(relation: RelationMessage, options?: ExecutionOptions): Promise<Schema>;
}

/**
 * A lazy query: each method returns a new DataFrame wrapping this one's plan; nothing runs on Spark until
 * `collect`, `count` or a write.
 */
export class DataFrame {
  readonly #runner: PlanRunner;
  readonly #relation: RelationMessage;

  /** @internal Use `client.read`, `client.table`. */
  constructor(runner: PlanRunner, relation: RelationMessage) {
    this.#runner = runner;
    this.#relation = relation;
  }

  /** Adds or replaces columns, keyed by output name. */
  withColumns(columns: Record<string, Column>): DataFrame {
    const aliases = Object.entries(columns).map(([name, column]) => {
      if (name === "") throw new InvalidInputError("withColumns", "column names must be non-empty");
      return { expr: column.expression, name: [name] };
    });
    if (aliases.length === 0) return this;
    return this.#wrap({ withColumns: { input: this.#relation, aliases } });
  }

  /** Keeps only the given columns (expressions), in order. */
  select(...columns: Column[]): DataFrame {
    if (columns.length === 0) throw new InvalidInputError("select", "needs at least one column");
    return this.#wrap({ project: { input: this.#relation, expressions: columns.map((c) => c.expression) } });
  }

  /** Keeps the rows for which `condition` is true. */
  filter(condition: Column): DataFrame {
    return this.#wrap({ filter: { input: this.#relation, condition: condition.expression } });
  }

  /** Groups rows by the given columns (none: one group over all rows); `agg` names the aggregates. */
  groupBy(...columns: Column[]): { agg(...aggregates: Column[]): DataFrame } {
    return {
      agg: (...aggregates: Column[]): DataFrame => {
        if (aggregates.length === 0) throw new InvalidInputError("agg", "needs at least one aggregate");
        return this.#wrap({
          aggregate: {
            input: this.#relation,
            groupType: GROUP_TYPE_GROUPBY,
            groupingExpressions: columns.map((c) => c.expression),
            aggregateExpressions: aggregates.map((c) => c.expression),
          },
        });
      },
    };
  }

  /**
   * The rows of this DataFrame and then `other`'s (UNION ALL), columns matched by name. With
   * `allowMissingColumns`, a column only one side has is null on the other; otherwise both sides must have
   * the same columns.
   */
  unionByName(other: DataFrame, options: { allowMissingColumns?: boolean } = {}): DataFrame {
    return this.#wrap({
      setOp: {
        leftInput: this.#relation,
        rightInput: other.#relation,
        setOpType: SET_OP_TYPE_UNION,
        isAll: true,
        byName: true,
        allowMissingColumns: options.allowMissingColumns === true,
      },
    });
  }

  /** Without the named top-level columns; a name this DataFrame does not have is ignored. */
  drop(...names: string[]): DataFrame {
    if (names.length === 0) return this;
    return this.#wrap({
      drop: { input: this.#relation, columns: names.map((name) => col(name).expression) },
    });
  }

  /** At most `n` rows. */
  limit(n: number): DataFrame {
    if (!Number.isInteger(n) || n < 0 || n > 2 ** 31 - 1) {
      throw new InvalidInputError("limit", "must be an integer between 0 and 2147483647");
    }
    return this.#wrap({ limit: { input: this.#relation, limit: n } });
  }

  /** Runs the query and returns every row. */
  collect(options?: ExecutionOptions): Promise<Row[]> {
    return this.#runner.collectRelation(this.#relation, options);
  }

  /** Runs the query and returns how many rows it has. */
  /**
   * The columns this DataFrame would produce, as Spark's analysis finds them (nothing runs, but a read
   * without a schema infers one: that reads the files, as a query over them would).
   */
  schema(options?: ExecutionOptions): Promise<Schema> {
    return this.#runner.analyzeSchema(this.#relation, options);
  }

  async count(options?: ExecutionOptions): Promise<number> {
    const rows = await this.groupBy()
      .agg(fn("count", lit(1)).alias("count"))
      .collect(options);
    return Number(rows[0]?.count ?? 0);
  }

  /** A writer for this DataFrame into a catalog table (DataFrameWriterV2). */
  writeTo(table: string): DataFrameWriterV2 {
    if (typeof table !== "string" || table.trim() === "") {
      throw new InvalidInputError("writeTo", "table name must be a non-empty string");
    }
    return new DataFrameWriterV2(this.#runner, this.#relation, table);
  }

  #wrap(relation: RelationMessage): DataFrame {
    return new DataFrame(this.#runner, relation);
  }
}

/**
 * Writes a DataFrame into a catalog table (Spark's DataFrameWriterV2, sent as WriteOperationV2). Configure
 * with `using`, `option(s)`, `tableProperty`, then run one of the terminal methods; success is a clean end
 * of the call, there is no result. Columns are matched by name on append and overwrite.
 */
export class DataFrameWriterV2 {
  readonly #runner: PlanRunner;
  readonly #input: RelationMessage;
  readonly #table: string;
  #provider: string | undefined;
  readonly #options: Record<string, string> = {};
  readonly #properties: Record<string, string> = {};

  /** @internal Use `dataFrame.writeTo(table)`. */
  constructor(runner: PlanRunner, input: RelationMessage, table: string) {
    this.#runner = runner;
    this.#input = input;
    this.#table = table;
  }

  /** The table format when creating, e.g. `iceberg`. */
  using(provider: string): this {
    this.#provider = provider;
    return this;
  }

  /** A write option, e.g. Iceberg's `snapshot-property.<key>` to mark the commit's snapshot summary. */
  option(key: string, value: string): this {
    this.#options[key] = value;
    return this;
  }

  options(map: Record<string, string>): this {
    for (const [key, value] of Object.entries(map)) this.option(key, value);
    return this;
  }

  /** A table property, applied when creating or replacing the table. */
  tableProperty(key: string, value: string): this {
    this.#properties[key] = value;
    return this;
  }

  /** Appends the rows to an existing table. */
  append(options?: ExecutionOptions): Promise<void> {
    return this.#write(WriteMode.APPEND, options);
  }

  /** Replaces the rows matching `condition` with this DataFrame's rows, atomically. */
  overwrite(condition: Column, options?: ExecutionOptions): Promise<void> {
    return this.#write(WriteMode.OVERWRITE, options, condition);
  }

  /** Creates the table from this DataFrame; fails if it exists. */
  create(options?: ExecutionOptions): Promise<void> {
    return this.#write(WriteMode.CREATE, options);
  }

  /** Creates the table from this DataFrame, replacing it if it exists. */
  createOrReplace(options?: ExecutionOptions): Promise<void> {
    return this.#write(WriteMode.CREATE_OR_REPLACE, options);
  }

  #write(mode: number, options: ExecutionOptions | undefined, condition?: Column): Promise<void> {
    return this.#runner.runCommand(
      {
        writeOperationV2: {
          input: this.#input,
          tableName: this.#table,
          ...(this.#provider === undefined ? {} : { provider: this.#provider }),
          options: { ...this.#options },
          tableProperties: { ...this.#properties },
          mode,
          ...(condition === undefined ? {} : { overwriteCondition: condition.expression }),
        },
      },
      options,
    );
  }
}
