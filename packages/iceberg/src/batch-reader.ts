import {
  col,
  fn,
  lit,
  quoteName,
  schemaDdl,
  type Column,
  type DataFrame,
  type ExecutionOptions,
  type SchemaField,
  type SparkConnectClient,
} from "@lakeferry/spark-connect";
import { CORRUPT_RECORD_COLUMN } from "./bad-records.ts";
import { splitTopLevel } from "./ddl-list.ts";
import { RefusedFilesError, type FileRefusal } from "./refused-files.ts";
import type { FileFormat } from "./write-batch.ts";

/** What a batch's reads share: how Spark reads its files and how a row names the file it came from. */
export interface BatchReaderOptions {
  spark: SparkConnectClient;
  format: FileFormat;
  /** The batch's reader options (with lakeferry's `mode` and corrupt-record column). */
  options: Record<string, string>;
  /** Reader options the paths need (ViewFS links of hidden-name aliases). */
  readerOptions: Record<string, string>;
  /** The batch's reader paths, in the order of its files. */
  readerPaths: readonly string[];
  /** The caller's URIs of the batch's files, in the order of `readerPaths`. */
  files: readonly string[];
  /** `_source_file` from a column holding a row's `_metadata.file_path`. */
  sourceColumnOf: (filePath: Column) => Column;
  /**
   * Session settings for the header check, set before its query (the session's own are left otherwise: the
   * caller sets its own before its next job). Default: none.
   */
  headerCheckSettings?: Record<string, string>;
}

/** A header line as the header check saw it: its text, and a hash of its bytes (which is what files share). */
interface HeaderLine {
  key: string;
  text: string;
}

/** A column of a DDL column list: its name (unquoted) and its definition as written. */
interface DdlColumn {
  name: string;
  definition: string;
}

/** Orders the lines of one read partition (a file's first split): the header is a file's first kept line. */
const LINE_ORDER = "_lakeferry_line_order";

/**
 * Reads a batch's files as one DataFrame. Spark applies a CSV read's columns by position to every file of
 * the read (the first file's header names them when Spark infers them; a declared schema names them
 * whatever each header says), so CSV files read with `header` are read by their own header instead: one
 * Spark query learns every file's header line, files with the same header are read together, and the
 * groups are combined by column name (`unionByName`). Other formats, and CSV without `header`, are one
 * plain read, as before.
 *
 * The header check costs one Spark job per batch (a text read of its files keeping each one's first line:
 * every line is read, none parsed). A batch whose files all share one header (and, with a declared schema,
 * name its columns in its order) is then read exactly as before; other batches pay at most one analysis of
 * a file per distinct header and a union of one read per header.
 */
export class BatchReader {
  readonly #spark: SparkConnectClient;
  readonly #format: FileFormat;
  readonly #options: Record<string, string>;
  readonly #readerOptions: Record<string, string>;
  readonly #readerPaths: readonly string[];
  readonly #sourceColumnOf: (filePath: Column) => Column;
  /** The caller's URI → reader path: the header check reports files by `_source_file`. */
  readonly #pathOf: Map<string, string>;
  /** Reader path → the caller's URI (refusals name files by URI). */
  readonly #uriOf: Map<string, string>;
  readonly #byHeader: boolean;
  readonly #headerCheckSettings: Record<string, string>;
  /** Each reader path's header line (absent: the file has none, e.g. it is empty); learnt once per batch. */
  #headers: Map<string, HeaderLine> | undefined;
  /** Column names Spark gives a header, per header key (or per path of a file read alone). */
  readonly #names = new Map<string, Promise<string[]>>();
  /** Time spent learning headers (the header check and reads of header names), in ms. */
  #headerMs = 0;

  constructor(options: BatchReaderOptions) {
    this.#spark = options.spark;
    this.#format = options.format;
    this.#options = options.options;
    this.#readerOptions = options.readerOptions;
    this.#readerPaths = options.readerPaths;
    this.#sourceColumnOf = options.sourceColumnOf;
    this.#headerCheckSettings = options.headerCheckSettings ?? {};
    this.#pathOf = new Map(options.files.map((uri, index) => [uri, options.readerPaths[index] as string]));
    this.#uriOf = new Map(options.files.map((uri, index) => [options.readerPaths[index] as string, uri]));
    this.#byHeader =
      options.format === "csv" && optionOf(options.options, "header")?.toLowerCase() === "true";
  }

  /** The batch's reader paths, in the order of its files. */
  get paths(): string[] {
    return [...this.#readerPaths];
  }

  /**
   * Time spent learning the files' headers so far (ms): the batch's header check and any read of a
   * header's column names. Undefined when the batch is not CSV read with a header.
   */
  get headerMs(): number | undefined {
    return this.#byHeader ? Math.round(this.#headerMs) : undefined;
  }

  /** Runs `work`, adding its time to {@link headerMs}. */
  async #timed<T>(work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      this.#headerMs += performance.now() - started;
    }
  }

  /**
   * The rows of `paths` (a subset of the batch's reader paths), read with `schema` (Spark DDL; inferred when
   * undefined), with `columns` added from each file's own read (e.g. `_source_file`, which needs the scan's
   * `_metadata`). With a declared schema, columns are the schema's, in its order, whatever the headers; a
   * column a file's header lacks is null, and a header column the schema does not name is left out.
   */
  async read(
    paths: readonly string[],
    schema: string | undefined,
    columns: Record<string, Column>,
    options: ExecutionOptions | undefined,
    readerOptions: Record<string, string> = {},
  ): Promise<DataFrame> {
    // Header columns the schema leaves out are dropped before lakeferry's columns are added: a header column
    // named like one of them (`_source_file` in a file exported from a table) must not replace it.
    const scan = (
      group: readonly string[],
      groupSchema: string | undefined,
      drop: string[] = [],
    ): DataFrame => {
      const read = this.#spark.read({
        format: this.#format,
        ...(groupSchema === undefined ? {} : { schema: groupSchema }),
        options: { ...this.#options, ...readerOptions, ...this.#readerOptions },
        paths: [...group],
      });
      return (drop.length > 0 ? read.drop(...drop.map(quoteName)) : read).withColumns(columns);
    };
    if (!this.#byHeader) return scan(paths, schema);
    if (schema === undefined) {
      // One file, or files that share a header: Spark infers the columns of the header they all have.
      if (paths.length === 1) return scan(paths, undefined);
      const groups = await this.#groups(paths, options);
      if (groups.length === 1) return scan(paths, undefined);
      const merged = await this.#timed(() =>
        this.#mergedColumns(groups, scan, Object.keys(columns), options),
      );
      // Types inferred per group differ: every group is read with the types one read of all the files
      // would infer (a union would cast one group's values: "02134" → 2134 → "2134").
      if (merged.retype) return this.read(paths, schemaDdl(merged.fields), columns, options, readerOptions);
      return groups
        .map((group) => scan(group.paths, undefined))
        .reduce((all, group) => all.unionByName(group, { allowMissingColumns: true }));
    }
    const declared = ddlColumns(schema);
    const groups =
      paths.length === 1
        ? [{ key: `path ${paths[0]}`, paths: [...paths] }]
        : await this.#groups(paths, options);
    const reads: { paths: string[]; plan: HeaderOrderedSchema | undefined }[] = [];
    for (const group of groups) {
      const names = await this.#timed(() => this.#headerNames(group.key, group.paths, declared, options));
      reads.push({ paths: group.paths, plan: headerOrderedSchema(declared, names) });
    }
    // Headers that name the declared columns in their order (or none of them: then the schema names the
    // header's columns by position, as Spark reads it, so a schema that renames a file's columns keeps
    // working) need no more than the plain read.
    if (reads.every((read) => read.plan === undefined || read.plan.asDeclared)) return scan(paths, schema);
    const frames = reads.map((read) =>
      read.plan === undefined
        ? scan(read.paths, schema)
        : scan(read.paths, read.plan.schema, read.plan.unnamed),
    );
    // An empty read with the declared columns first: the union takes its column order and types, and a
    // declared column a group's header lacks comes out null.
    const shape = scan([paths[0] as string], schema).limit(0);
    return frames.reduce((all, group) => all.unionByName(group, { allowMissingColumns: true }), shape);
  }

  /**
   * The columns of a batch read without a schema whose files have several headers: each group's inferred
   * columns, merged by name (without regard to case) in order of first appearance, each with the type one
   * CSV read of all the files would infer ({@link widerCsvType}); `retype` when two groups inferred different
   * types for a column. A group whose header shares no column with the largest group's is refused before
   * anything is read (a file whose first line is data, under `header`, would add its values as columns).
   */
  async #mergedColumns(
    groups: readonly { key: string; paths: string[] }[],
    scan: (group: readonly string[], schema: string | undefined) => DataFrame,
    added: readonly string[],
    options: ExecutionOptions | undefined,
  ): Promise<{ fields: SchemaField[]; retype: boolean }> {
    // The files' own columns: the ones lakeferry adds to every read are no part of them.
    const ours = new Set(added.map((name) => name.toLowerCase()));
    const schemas: SchemaField[][] = [];
    for (const group of groups) {
      const { fields } = await scan(group.paths, undefined).schema(options);
      schemas.push(fields.filter((field) => !ours.has(field.name.toLowerCase())));
    }
    const names = (fields: readonly SchemaField[]): Set<string> =>
      new Set(fields.map((field) => field.name.toLowerCase()));
    let largest = 0;
    groups.forEach((group, index) => {
      if (group.paths.length > (groups[largest]?.paths.length ?? 0)) largest = index;
    });
    const reference = names(schemas[largest] ?? []);
    const refused = new Map<string, FileRefusal>();
    groups.forEach((group, index) => {
      if ([...names(schemas[index] ?? [])].some((name) => reference.has(name))) return;
      const header = this.#headers?.get(group.paths[0] as string)?.text ?? "";
      for (const path of group.paths) {
        refused.set(this.#uriOf.get(path) ?? path, {
          status: "FAILED",
          message:
            `its header line ${JSON.stringify(header.slice(0, 200))} names none of the columns the batch's other ` +
            `files have (${[...reference].slice(0, 10).join(", ")}): a file without a header line under ` +
            `header: true? Add the header, or read such files with their own ingestion`,
        });
      }
    });
    if (refused.size > 0) throw new RefusedFilesError("SCHEMA_MISMATCH", "have an unrelated header", refused);
    const fields = new Map<string, SchemaField>();
    let retype = false;
    for (const schema of schemas) {
      for (const field of schema) {
        const key = field.name.toLowerCase();
        const seen = fields.get(key);
        if (seen === undefined) fields.set(key, field);
        else if (seen.type !== field.type) {
          retype = true;
          fields.set(key, { ...seen, type: widerCsvType(seen.type, field.type) });
        }
      }
    }
    return { fields: [...fields.values()], retype };
  }

  /** `paths` grouped by the header line their files share, groups and files in batch order. */
  async #groups(
    paths: readonly string[],
    options: ExecutionOptions | undefined,
  ): Promise<{ key: string; paths: string[] }[]> {
    this.#headers ??= await this.#timed(() => this.#learnHeaders(options));
    const headers = this.#headers;
    const groups = new Map<string, string[]>();
    let first: string | undefined;
    const headless: string[] = [];
    for (const path of paths) {
      const header = headers.get(path);
      // A file without a header line has no rows either: it joins any group (the first).
      if (header === undefined) {
        headless.push(path);
        continue;
      }
      first ??= header.key;
      const group = groups.get(header.key);
      if (group === undefined) groups.set(header.key, [path]);
      else group.push(path);
    }
    if (first === undefined) return [{ key: `path ${paths[0]}`, paths: [...paths] }];
    groups.get(first)?.push(...headless);
    return [...groups].map(([key, group]) => ({ key, paths: group }));
  }

  /**
   * Every file's header line in one Spark query: a text read of the batch's files (decompressed, split into
   * lines as Spark's CSV reader splits them) keeping, per file, the first non-blank line of its first split
   * that is not a comment (Spark's CSV reader skips those before the header). Lines are told apart by a
   * hash of their bytes, so files in any encoding group by what they really hold.
   */
  async #learnHeaders(options: ExecutionOptions | undefined): Promise<Map<string, HeaderLine>> {
    const lineSep = optionOf(this.#options, "lineSep");
    const comment = optionOf(this.#options, "comment");
    // Blank as Java's String.trim sees it (Spark's CSV reader skips such lines): nothing above U+0020.
    let kept = fn(
      "and",
      fn("==", col("_metadata.file_block_start"), lit(0)),
      fn("rlike", col("value"), lit("[^\\x00-\\x20]")),
    );
    if (comment !== undefined && comment !== "") {
      kept = fn("and", kept, fn("not", fn("startswith", col("value"), lit(comment))));
    }
    if (Object.keys(this.#headerCheckSettings).length > 0)
      await this.#spark.setConfig(this.#headerCheckSettings);
    const rows = await this.#spark
      .read({
        format: "text",
        options: { ...(lineSep === undefined ? {} : { lineSep }), ...this.#readerOptions },
        paths: [...this.#readerPaths],
      })
      .filter(kept)
      // Within a partition the ids follow the lines of its files, one file after another (a file's first
      // split is read by one task, whether or not small files are packed together).
      .withColumns({ [LINE_ORDER]: fn("monotonically_increasing_id") })
      // Grouped by Spark's path, looked up once per file after the aggregation rather than once per line.
      .groupBy(col("_metadata.file_path").alias("path"))
      .agg(fn("min_by", col("value"), col(LINE_ORDER)).alias("header"))
      .select(
        this.#sourceColumnOf(col("path")).alias("_source_file"),
        col("header"),
        fn("sha2", col("header"), lit(256)).alias("key"),
      )
      .collect(options);
    const headers = new Map<string, HeaderLine>();
    for (const row of rows) {
      const path = this.#pathOf.get(String(row._source_file));
      if (path !== undefined) headers.set(path, { key: String(row.key), text: String(row.header) });
    }
    return headers;
  }

  /**
   * The column names Spark reads from a group's header. A plain header (no quote or escape character, in
   * UTF-8) that splits into names of declared columns needs no Spark call; otherwise Spark reads the
   * header of the group's first file (its names deduplicated and defaulted as Spark does).
   */
  #headerNames(
    key: string,
    paths: readonly string[],
    declared: readonly DdlColumn[],
    options: ExecutionOptions | undefined,
  ): Promise<string[]> {
    let names = this.#names.get(key);
    if (names === undefined) {
      const line = this.#headers?.get(paths[0] as string);
      const known = new Set(declared.map((column) => column.name.toLowerCase()));
      let plain = line === undefined ? undefined : plainHeaderNames(line.text, this.#options);
      if (plain?.some((name) => !known.has(name.toLowerCase()))) plain = undefined;
      names =
        plain !== undefined
          ? Promise.resolve(plain)
          : this.#spark
              .read({
                format: "csv",
                // Without a schema and without inference Spark reads the header line alone.
                options: {
                  ...withoutOptions(this.#options, ["inferSchema", "enforceSchema"]),
                  ...this.#readerOptions,
                },
                paths: [paths[0] as string],
              })
              .schema(options)
              .then((schema) => schema.fields.map((field) => field.name));
      this.#names.set(key, names);
    }
    return names;
  }
}

/** How files with a given header are read under a declared schema. */
export interface HeaderOrderedSchema {
  /** Spark DDL in the header's order. */
  schema: string;
  /** Header columns the declared schema does not name (read as STRING, dropped after the read). */
  unnamed: string[];
  /** The header names exactly the declared columns, in their order: the declared schema reads it as is. */
  asDeclared: boolean;
}

/**
 * The read schema for files whose header has `names`: the header's columns in its order, each with its
 * declared definition, a header column the schema does not name as STRING, and the corrupt-record column
 * (not a header column) last. Undefined when the header names none of the declared columns. Names match
 * without regard to case, as Spark resolves them, and a byte order mark before the first name is ignored.
 */
export function headerOrderedSchema(
  declared: readonly DdlColumn[],
  names: readonly string[],
): HeaderOrderedSchema | undefined {
  const byName = new Map(declared.map((column) => [column.name.toLowerCase(), column]));
  const parts: string[] = [];
  const unnamed: string[] = [];
  const matched: DdlColumn[] = [];
  names.forEach((name, index) => {
    // Spark keeps the spaces around a header's names (`id, name`): they match the declared ` name` as `name`.
    const key = (index === 0 ? name.replace(/^\uFEFF/, "") : name).trim().toLowerCase();
    const column = byName.get(key);
    if (column === undefined || column.name === CORRUPT_RECORD_COLUMN) {
      parts.push(`${quoteName(name)} STRING`);
      unnamed.push(name);
    } else {
      parts.push(column.definition);
      matched.push(column);
    }
  });
  const corrupt = declared.find((column) => column.name === CORRUPT_RECORD_COLUMN);
  const columns = declared.filter((column) => column !== corrupt);
  // None of the declared names; or as many names as declared columns where each the schema lacks is one
  // Spark made up (an empty name reads as `_c3`, a repeated one as `id0`, `ID1`): the schema names the
  // header's columns by position, as Spark reads them (a schema that renames a file's columns keeps working).
  // Otherwise names decide: a declared column the header lacks is null, a header column it lacks is left out.
  const madeUp = (name: string): boolean =>
    /^_c\d+$/.test(name) ||
    columns.some((column) => new RegExp(`^${escapeRegExp(column.name)}\\d+$`, "i").test(name));
  if (
    matched.length === 0 ||
    (unnamed.length > 0 && names.length === columns.length && unnamed.every(madeUp))
  )
    return undefined;
  if (corrupt !== undefined) parts.push(corrupt.definition);
  const asDeclared =
    unnamed.length === 0 &&
    matched.length === columns.length &&
    matched.every((column, index) => column === columns[index]);
  return { schema: parts.join(", "), unnamed, asDeclared };
}

/** The top-level columns of a DDL column list, each with its definition as written. */
export function ddlColumns(ddl: string): DdlColumn[] {
  return splitTopLevel(ddl).flatMap((part) => {
    const definition = part.trim();
    const match = /^`((?:[^`]|``)+)`|^([^\s:]+)/.exec(definition);
    const name = match?.[1]?.replaceAll("``", "`") ?? match?.[2];
    return name === undefined || name === "" ? [] : [{ name, definition }];
  });
}

/**
 * A header's column names when Spark would read them verbatim: UTF-8, no quote, escape or comment
 * character in the line, names neither empty nor repeated (Spark renames those). Undefined otherwise.
 */
export function plainHeaderNames(line: string, options: Record<string, string>): string[] | undefined {
  const encoding = optionOf(options, "encoding") ?? optionOf(options, "charset");
  if (encoding !== undefined && !/^utf-?8$/i.test(encoding)) return undefined;
  const sep = optionOf(options, "sep") ?? optionOf(options, "delimiter") ?? ",";
  if (sep === "" || sep.includes("\\")) return undefined;
  const quote = optionOf(options, "quote") ?? '"';
  const escape = optionOf(options, "escape") ?? "\\";
  for (const special of [quote, escape, "\uFFFD", "\uFEFF"]) {
    if (special !== "" && line.includes(special)) return undefined;
  }
  const names = line.split(sep);
  const folded = new Set(names.map((name) => name.toLowerCase()));
  if (folded.size !== names.length || names.some((name) => name === "" || name.trim() !== name))
    return undefined;
  return names;
}

/** A reader option's value; Spark's option keys are case-insensitive. */
function optionOf(options: Record<string, string>, key: string): string | undefined {
  const wanted = key.toLowerCase();
  for (const [name, value] of Object.entries(options)) if (name.toLowerCase() === wanted) return value;
  return undefined;
}

function withoutOptions(options: Record<string, string>, keys: readonly string[]): Record<string, string> {
  const dropped = new Set(keys.map((key) => key.toLowerCase()));
  return Object.fromEntries(Object.entries(options).filter(([key]) => !dropped.has(key.toLowerCase())));
}

/** Spark's numeric CSV types, narrowest first (a wider one holds every value of a narrower one). */
const NUMERIC_ORDER = ["int", "bigint", "decimal", "double"];

/**
 * The type one CSV read infers for a column whose values two groups inferred as `a` and `b`, as Spark's CSV
 * inference merges types: a numeric type widens (int → bigint → decimal → double), a date with a timestamp
 * is a timestamp, anything else is a string.
 */
export function widerCsvType(a: string, b: string): string {
  if (a === b) return a;
  const rank = (type: string): number => NUMERIC_ORDER.indexOf(type.replace(/\(.*$/, ""));
  if (rank(a) >= 0 && rank(b) >= 0) {
    if (a.startsWith("decimal") && b.startsWith("decimal")) return widerDecimal(a, b);
    const wider = rank(a) >= rank(b) ? a : b;
    const other = wider === a ? b : a;
    // An integral with a decimal: the decimal widened to hold the integral's digits.
    if (wider.startsWith("decimal"))
      return widerDecimal(wider, other === "int" ? "decimal(10,0)" : "decimal(20,0)");
    return wider;
  }
  const temporal = new Set([a.replace(/_ntz$/, ""), b.replace(/_ntz$/, "")]);
  if (temporal.size === 2 && temporal.has("date") && temporal.has("timestamp"))
    return a.startsWith("timestamp") ? a : b;
  return "string";
}

function widerDecimal(a: string, b: string): string {
  const digits = (type: string): [number, number] => {
    const [precision = 10, scale = 0] = (/\((\d+),\s*(\d+)\)/.exec(type)?.slice(1) ?? []).map(Number);
    return [precision, scale];
  };
  const [pa, sa] = digits(a);
  const [pb, sb] = digits(b);
  const scale = Math.max(sa, sb);
  const precision = Math.max(pa - sa, pb - sb) + scale;
  return precision > 38 ? "double" : `decimal(${precision},${scale})`;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
