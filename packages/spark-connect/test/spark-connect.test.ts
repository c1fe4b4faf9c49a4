import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  SparkAnalysisError,
  SparkConnectClient,
  SparkConnectError,
  SparkExecutionError,
  SparkUnavailableError,
  col,
  escapeGlob,
  expr,
  fn,
  isRetryableSparkError,
  lit,
  schemaDdl,
} from "../src/index.ts";

// Against the real Spark Connect server: `bash scripts/services.sh up spark`, then
// `eval "$(bash scripts/services.sh env)"`.
const remote = process.env.SPARK_REMOTE;
if (!remote) throw new Error('SPARK_REMOTE is not set; run: eval "$(bash scripts/services.sh env)"');

/** A slow query that barely uses CPU: one task sleeping 100 ms per row. */
const SLOW_QUERY =
  "SELECT reflect('java.lang.Thread', 'sleep', CAST(100 AS BIGINT)) AS slept FROM range(0, 300, 1, 1)";

/**
 * Spark 3.5 sends less about an error than 4.x (no SQLSTATE, no parameters, no cause chain, no
 * FetchErrorDetails) and has no ReleaseSession: where a fact differs, the test says what 3.5 gives instead.
 */
let spark35 = false;
let client: SparkConnectClient;
const namespace = `lake.sc_${randomBytes(4).toString("hex")}`;
let dir: string;

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the call to fail, it succeeded");
}

beforeAll(async () => {
  client = new SparkConnectClient({ remote, deadlineMs: 60_000 });
  spark35 = (await client.serverVersion()).startsWith("3.5.");
  dir = mkdtempSync(join(tmpdir(), "lakeferry-spark-connect-"));
  await client.sqlCommand(`CREATE NAMESPACE IF NOT EXISTS ${namespace}`);
});

afterAll(async () => {
  await client?.close();
});

describe("queries", () => {
  it("returns SELECT 1 as a typed row", async () => {
    expect(await client.sql("SELECT 1 AS one")).toEqual([{ one: 1 }]);
  });

  it("converts Arrow values to JS values", async () => {
    const [row] = await client.sql(`
      SELECT 7 AS int_col, CAST(42 AS BIGINT) AS long_safe, CAST(9007199254740993 AS BIGINT) AS long_big,
             2.5D AS double_col, 'text' AS string_col, true AS bool_col,
             TIMESTAMP'2024-01-02 03:04:05.123' AS ts_col, DATE'2024-05-06' AS date_col,
             CAST(NULL AS STRING) AS null_col, array(1, 2, 3) AS array_col,
             named_struct('a', 1, 'b', named_struct('c', 'deep')) AS struct_col,
             map('k1', 1, 'k2', 2) AS map_col, map(1, 'one') AS int_map_col,
             CAST(-12.345 AS DECIMAL(10, 3)) AS decimal_col, array(named_struct('x', 1)) AS array_of_struct`);
    expect(row).toEqual({
      int_col: 7,
      long_safe: 42,
      long_big: 9007199254740993n,
      double_col: 2.5,
      string_col: "text",
      bool_col: true,
      ts_col: new Date("2024-01-02T03:04:05.123Z"),
      date_col: new Date("2024-05-06T00:00:00Z"),
      null_col: null,
      array_col: [1, 2, 3],
      struct_col: { a: 1, b: { c: "deep" } },
      map_col: { k1: 1, k2: 2 },
      int_map_col: new Map([[1, "one"]]),
      decimal_col: "-12.345",
      array_of_struct: [{ x: 1 }],
    });
  });

  it("binds named arguments of every SqlArg type", async () => {
    const at = new Date("2025-03-04T05:06:07.890Z");
    const [row] = await client.sql(
      `SELECT :s AS s, :i AS i, :l AS l, :big AS big, :d AS d, :b AS b, :t AS t, :n IS NULL AS n_is_null,
              typeof(:i) AS i_type, typeof(:l) AS l_type`,
      { s: "it's", i: 5, l: 2 ** 40, big: 2n ** 62n, d: 0.25, b: false, t: at, n: null },
    );
    expect(row).toEqual({
      s: "it's",
      i: 5,
      l: 2 ** 40,
      big: 2n ** 62n,
      d: 0.25,
      b: false,
      t: at,
      n_is_null: true,
      i_type: "int",
      l_type: "bigint",
    });
  });

  it("reports the server version and sets and reads config", async () => {
    const version = await client.version();
    expect(version).toMatch(/^\d+\.\d+\.\d+/);
    // scripts/services.sh env says which Spark it started.
    if (process.env.LAKEFERRY_SPARK_VERSION) expect(version).toBe(process.env.LAKEFERRY_SPARK_VERSION);
    expect(await client.serverVersion()).toBe(version);
    await client.setConfig({ "spark.sql.shuffle.partitions": "3", "lakeferry.test.key": "v1" });
    expect(
      await client.getConfig(["spark.sql.shuffle.partitions", "lakeferry.test.key", "lakeferry.unset"]),
    ).toEqual({
      "spark.sql.shuffle.partitions": "3",
      "lakeferry.test.key": "v1",
      "lakeferry.unset": undefined,
    });
  });
});

describe("SQL commands on Iceberg", () => {
  it("creates a table, inserts with arguments and reads it back", async () => {
    const table = `${namespace}.ddl`;
    expect(await client.sqlCommand(`CREATE TABLE ${table} (id BIGINT, name STRING) USING iceberg`)).toEqual(
      [],
    );
    await client.sqlCommand(`INSERT INTO ${table} VALUES (:id, :name), (2, 'b')`, { id: 1, name: "a" });
    expect(await client.sql(`SELECT id, name FROM ${table} ORDER BY id`)).toEqual([
      { id: 1, name: "a" },
      { id: 2, name: "b" },
    ]);
    const shown = await client.sqlCommand(`SHOW TABLES IN ${namespace}`);
    expect(shown.map((r) => r.tableName)).toContain("ddl");
    // A plain query through sqlCommand is run too.
    expect(await client.sqlCommand(`SELECT count(*) AS n FROM ${table}`)).toEqual([{ n: 2 }]);
  });
});

describe("DataFrames", () => {
  it("reads JSON and CSV files with the source path column, literals and aggregates", async () => {
    // Glob characters and a space in the name: escapeGlob makes Spark read exactly this file.
    const jsonPath = join(dir, "events [1] a.json");
    writeFileSync(jsonPath, '{"id":1,"kind":"x"}\n{"id":2,"kind":"y"}\n{"id":3,"kind":"x"}\n');
    const csvPath = join(dir, "events.csv");
    writeFileSync(csvPath, "id,kind\n10,x\n11,y\n");

    const json = client
      .read({
        format: "json",
        schema: "id INT, kind STRING",
        options: { mode: "FAILFAST" },
        paths: [escapeGlob(jsonPath)],
      })
      .withColumns({ _source_file: col("_metadata.file_path"), batch: lit("b-1") });
    const rows = await json.collect();
    expect(rows).toHaveLength(3);
    // Spark reports the path as a URI, percent-encoded.
    expect(rows[0]).toEqual({
      id: 1,
      kind: "x",
      _source_file: `file:${encodeURI(jsonPath).replace(/\[/g, "%5B").replace(/\]/g, "%5D")}`,
      batch: "b-1",
    });
    expect(await json.count()).toBe(3);
    expect(await json.filter(expr("kind = 'x'")).select(col("id")).limit(1).collect()).toEqual([{ id: 1 }]);

    const csv = client.read({
      format: "csv",
      options: { header: "true" },
      schema: "id INT, kind STRING",
      paths: [csvPath],
    });
    const counts = await csv
      .groupBy(col("kind"))
      .agg(fn("count", lit(1)).alias("n"), fn("max", col("id")).alias("max_id"))
      .collect();
    expect(counts.sort((a, b) => String(a.kind).localeCompare(String(b.kind)))).toEqual([
      { kind: "x", n: 1, max_id: 10 },
      { kind: "y", n: 1, max_id: 11 },
    ]);
  });

  it("writes to Iceberg: create, append with a snapshot marker, overwrite by condition", async () => {
    const table = `${namespace}.written`;
    const rowsOf = (sql: string) => client.sql(sql);
    const files = (values: string) =>
      client
        .read({ format: "json", schema: "id BIGINT, _source_file STRING", paths: [writeJson(values)] })
        .select(col("id"), col("_source_file"));

    await files('{"id":1,"_source_file":"f1"}')
      .writeTo(table)
      .using("iceberg")
      .tableProperty("write.metadata.metrics.column._source_file", "full")
      .create();
    await files('{"id":2,"_source_file":"f2"}\n{"id":3,"_source_file":"f2"}')
      .writeTo(table)
      .option("snapshot-property.lakeferry.batch", "batch-42")
      .append();
    await files('{"id":20,"_source_file":"f2"}').writeTo(table).overwrite(expr("_source_file = 'f2'"));

    expect(await rowsOf(`SELECT id, _source_file FROM ${table} ORDER BY id`)).toEqual([
      { id: 1, _source_file: "f1" },
      { id: 20, _source_file: "f2" },
    ]);
    const marked = await rowsOf(
      `SELECT snapshot_id FROM ${table}.snapshots WHERE summary['lakeferry.batch'] = 'batch-42'`,
    );
    expect(marked).toHaveLength(1);
    const props = await rowsOf(`SHOW TBLPROPERTIES ${table}`);
    expect(props).toContainEqual({ key: "write.metadata.metrics.column._source_file", value: "full" });

    // create() refuses an existing table.
    const error = await rejection(files('{"id":9,"_source_file":"f9"}').writeTo(table).create());
    expect(error).toBeInstanceOf(SparkAnalysisError);
  });

  it("sends rows from the client (createDataFrame): strings, longs, timestamps and nulls, kept exactly", async () => {
    const at = new Date("2026-12-02T22:42:30.123Z");
    const rows = [
      { name: "a", n: 9_007_199_254_740_993n, at },
      { name: 'b\u00e9\n"quoted"', n: -1, at: null },
      { name: null, n: null, at: new Date(0) },
    ];
    const schema = [
      { name: "name", type: "string" },
      { name: "n", type: "long" },
      { name: "at", type: "timestamp" },
    ] as const;
    const frame = client.createDataFrame(rows, schema);
    expect(await frame.collect()).toEqual([
      { name: "a", n: 9_007_199_254_740_993n, at },
      { name: 'b\u00e9\n"quoted"', n: -1, at: null },
      { name: null, n: null, at: new Date(0) },
    ]);
    const table = `${namespace}.local_rows`;
    await client.sqlCommand(`CREATE TABLE ${table} (name STRING, n BIGINT, at TIMESTAMP) USING iceberg`);
    await frame.writeTo(table).append();
    expect(await client.sql(`SELECT count(*) AS c, max(n) AS top FROM ${table}`)).toEqual([
      { c: 3, top: 9_007_199_254_740_993n },
    ]);
    expect(() => client.createDataFrame([{ n: 1.5 }], [{ name: "n", type: "long" }])).toThrow(/rows\[0\]\.n/);
  });

  it("reports a schema as Spark infers it, in DDL text that reads the files back the same", async () => {
    const path = writeJson(
      '{"id": 1, "price": 2.5, "name": "a", "ok": true, "tags": ["x"], "at": {"day": "2026-12-03", "n": 7}, "m w": null}',
    );
    const inferred = client.read({ format: "json", paths: [path] });
    const schema = await inferred.schema();
    expect(schema.fields.map((field) => [field.name, field.type])).toEqual([
      ["at", "struct<`day`:string,`n`:bigint>"],
      ["id", "bigint"],
      ["m w", "string"],
      ["name", "string"],
      ["ok", "boolean"],
      ["price", "double"],
      ["tags", "array<string>"],
    ]);
    const typed = await client
      .sqlFrame(
        "SELECT CAST(1 AS TINYINT) AS b, CAST(1 AS DECIMAL(12,3)) AS d, DATE'2026-12-03' AS day, map('k', 1) AS m",
      )
      .schema();
    expect(typed.fields.map((field) => field.type)).toEqual([
      "tinyint",
      "decimal(12,3)",
      "date",
      "map<string,int>",
    ]);
    // The DDL text is a schema Spark reads with: the same columns come back.
    const again = await client
      .read({ format: "json", schema: schemaDdl(schema.fields), paths: [path] })
      .schema();
    expect(again.fields.map((field) => [field.name, field.type])).toEqual(
      schema.fields.map((field) => [field.name, field.type]),
    );
    await expect(client.sqlFrame("SELECT nope FROM range(1)").schema()).rejects.toBeInstanceOf(
      SparkAnalysisError,
    );
  });
});

let jsonFiles = 0;
function writeJson(lines: string): string {
  const path = join(dir, `write-${jsonFiles++}.json`);
  writeFileSync(path, lines + "\n");
  return path;
}

describe("typed errors", () => {
  it("bad SQL is a non-retryable SparkAnalysisError with its error class", async () => {
    const error = await rejection(client.sql("SELEC 1"));
    expect(error).toBeInstanceOf(SparkAnalysisError);
    expect(error).toMatchObject({ errorClass: "PARSE_SYNTAX_ERROR", retryable: false });
    expect((error as SparkConnectError).sqlState).toBe(spark35 ? undefined : "42601");
    expect(isRetryableSparkError(error)).toBe(false);
    expect((error as Error).message).toMatch(/^\[PARSE_SYNTAX_ERROR\]/);

    const missing = await rejection(client.sql(`SELECT * FROM ${namespace}.no_such_table`));
    expect(missing).toBeInstanceOf(SparkAnalysisError);
    expect(missing).toMatchObject({ errorClass: "TABLE_OR_VIEW_NOT_FOUND", retryable: false });
  });

  it("a missing path is not retryable", async () => {
    const error = await rejection(
      client.read({ format: "json", paths: [join(dir, "missing.json")] }).collect(),
    );
    expect(error).toBeInstanceOf(SparkAnalysisError);
    expect(error).toMatchObject({ errorClass: "PATH_NOT_FOUND", retryable: false });
  });

  it("malformed JSON under FAILFAST is a non-retryable SparkExecutionError with its cause chain", async () => {
    const path = join(dir, "malformed.json");
    writeFileSync(path, '{"id":1}\n{"id":2,"kin\n');
    const error = await rejection(
      client
        .read({ format: "json", schema: "id INT, kind STRING", options: { mode: "FAILFAST" }, paths: [path] })
        .collect(),
    );
    expect(error).toBeInstanceOf(SparkExecutionError);
    expect(error).toMatchObject({ code: "SPARK_BAD_INPUT", retryable: false });
    const causes = (error as SparkExecutionError).causes;
    expect(causes.some((c) => c.errorClass?.startsWith("MALFORMED_RECORD_IN_PARSING"))).toBe(true);
    expect((error as Error).message).toContain("Malformed records");
  });

  it("an unreachable server is a retryable SparkUnavailableError, quickly", async () => {
    const down = new SparkConnectClient({ remote: "sc://127.0.0.1:1", deadlineMs: 3_000 });
    try {
      const started = Date.now();
      const error = await rejection(down.sql("SELECT 1"));
      expect(error).toBeInstanceOf(SparkUnavailableError);
      expect(error).toMatchObject({ code: "SPARK_UNAVAILABLE", retryable: true });
      expect(Date.now() - started).toBeLessThan(3_500);
      // A second call, with the channel in backoff, fails the same way.
      expect(await rejection(down.version())).toBeInstanceOf(SparkUnavailableError);
    } finally {
      await down.close();
    }
  });

  it("a passed deadline is retryable and the session stays usable", async () => {
    const started = Date.now();
    const error = await rejection(client.sql(SLOW_QUERY, {}, { deadlineMs: 1_500 }));
    expect(error).toBeInstanceOf(SparkUnavailableError);
    expect(error).toMatchObject({ code: "SPARK_DEADLINE_EXCEEDED", retryable: true });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await client.sql("SELECT 2 AS two")).toEqual([{ two: 2 }]);
  });

  it("an abort signal cancels the call", async () => {
    const controller = new AbortController();
    const started = Date.now();
    const pending = client.sql(SLOW_QUERY, {}, { signal: controller.signal, tags: ["lakeferry-abort-test"] });
    setTimeout(() => controller.abort(new Error("worker shutting down")), 500);
    const error = await rejection(pending);
    expect(error).toBeInstanceOf(SparkConnectError);
    expect(error).toMatchObject({ code: "SPARK_ABORTED", retryable: true });
    expect((error as Error).message).toContain("worker shutting down");
    expect(Date.now() - started).toBeLessThan(5_000);
    // An already aborted signal fails before calling.
    expect(await rejection(client.sql("SELECT 1", {}, { signal: AbortSignal.abort() }))).toMatchObject({
      code: "SPARK_ABORTED",
    });
  });

  it("a lost session moves the client to a fresh session that keeps its config, and the call runs there", async (ctx) => {
    if (spark35)
      ctx.skip(
        "Spark 3.5 has no ReleaseSession nor server-side session ids: it recreates a lost session silently",
      );
    const sessionId = "5a3c2e10-0000-4000-8000-" + randomBytes(6).toString("hex");
    const victim = new SparkConnectClient({ remote: `${remote}/;session_id=${sessionId}` });
    try {
      await victim.setConfig({ "lakeferry.test.replayed": "yes" });
      expect(victim.sessionId).toBe(sessionId);
      // Another client releasing the same session stands in for a server that lost it.
      await new SparkConnectClient({ remote: `${remote}/;session_id=${sessionId}` }).close();

      // The server refuses the call before running it; the client moves on and runs it once more.
      expect(await victim.sql("SELECT 1 AS one")).toEqual([{ one: 1 }]);
      expect(victim.sessionId).not.toBe(sessionId);
      expect(await victim.getConfig(["lakeferry.test.replayed"])).toEqual({
        "lakeferry.test.replayed": "yes",
      });
    } finally {
      await victim.close();
    }
  });
});
