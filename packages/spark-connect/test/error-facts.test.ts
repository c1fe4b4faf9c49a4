/**
 * The facts on Spark errors (filePath, retryability of unreadable files, the Iceberg predicates), produced
 * by the running Spark Connect server: `bash scripts/services.sh up spark`, then
 * `eval "$(bash scripts/services.sh env)"`.
 */
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { outageOf } from "@lakeferry/core";
import {
  SparkConnectClient,
  SparkExecutionError,
  SparkUnavailableError,
  col,
  fn,
  isAlreadyPublished,
  isNotCherrypickable,
  isStagedSnapshotGone,
  isTableAlreadyExists,
  isTableNotFound,
  isUnalignedOverwrite,
  lit,
  type Row,
  type SparkConnectError,
} from "../src/index.ts";

const remote = process.env.SPARK_REMOTE;
if (!remote) throw new Error('SPARK_REMOTE is not set; run: eval "$(bash scripts/services.sh env)"');

/**
 * Spark 3.5 sends less about an error than 4.x (no SQLSTATE, no parameters, no cause chain, no
 * FetchErrorDetails) and has no ReleaseSession: where a fact differs, the test says what 3.5 gives instead.
 */
let spark35 = false;
let client: SparkConnectClient;
let dir: string;

/** How Spark spells a failed local file: 4.x as the reader was given it, 3.5 as a Hadoop Path (`file:/…`). */
const spelled = (path: string): string => (spark35 ? `file:${path}` : `file://${path}`);
const schema = `errf_${randomBytes(4).toString("hex")}`;
const namespace = `lake.${schema}`;

/** The error a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<SparkConnectError> {
  try {
    await promise;
  } catch (error) {
    return error as SparkConnectError;
  }
  throw new Error("expected the call to fail, it succeeded");
}

beforeAll(async () => {
  client = new SparkConnectClient({ remote, deadlineMs: 120_000 });
  spark35 = (await client.serverVersion()).startsWith("3.5.");
  // A space, '#' and '%' in the directory name: Spark percent-encodes them in FAILED_READ_FILE's path.
  dir = mkdtempSync(join(tmpdir(), "lakeferry errors #%41-"));
  await client.sqlCommand(`CREATE NAMESPACE IF NOT EXISTS ${namespace}`);
});

afterAll(async () => {
  await client?.close();
});

describe("outages", () => {
  it("an unreachable server reports outage spark", async () => {
    const down = new SparkConnectClient({ remote: "sc://127.0.0.1:1", deadlineMs: 3_000 });
    try {
      const error = await rejection(down.sql("SELECT 1"));
      expect(error).toBeInstanceOf(SparkUnavailableError);
      expect(error).toMatchObject({ retryable: true, outage: "spark" });
      expect(outageOf(new Error("wrapped", { cause: error }))).toBe("spark");
    } finally {
      await down.close();
    }
  });

  it("a lost session is no failure at all: the call runs again in a fresh session", async (ctx) => {
    if (spark35)
      ctx.skip(
        "Spark 3.5 has no ReleaseSession nor server-side session ids: it recreates a lost session silently",
      );
    // (Its classification, SparkSessionChangedError with outage spark, is unit-tested: the client now
    // handles it before a caller could see it.)
    const sessionId = "5a3c2e10-0000-4000-8000-" + randomBytes(6).toString("hex");
    const victim = new SparkConnectClient({ remote: `${remote}/;session_id=${sessionId}` });
    try {
      await victim.version();
      // Another client releasing the same session stands in for a server that lost it.
      await new SparkConnectClient({ remote: `${remote}/;session_id=${sessionId}` }).close();
      expect(await victim.sql("SELECT 1 AS one")).toEqual([{ one: 1 }]);
      expect(victim.sessionId).not.toBe(sessionId);
    } finally {
      await victim.close();
    }
  });

  it("a bad record reports none", async () => {
    // 3.5 casts a bad value to NULL unless ANSI mode is on (4.x's default).
    if (spark35) await client.setConfig({ "spark.sql.ansi.enabled": "true" });
    const error = await rejection(client.sql("SELECT CAST('x' AS INT)"));
    expect(error).toMatchObject({ retryable: false, outage: undefined });
    expect(outageOf(error)).toBeUndefined();
  });
});

describe("unreadable files", () => {
  it("malformed JSON under FAILFAST names its file, decoded", async () => {
    const path = join(dir, "bad record.json");
    writeFileSync(path, '{"id":1}\n{"id":2,"kin\n');
    const error = await rejection(
      client
        .read({ format: "json", schema: "id INT, kind STRING", options: { mode: "FAILFAST" }, paths: [path] })
        .collect(),
    );
    expect(error).toBeInstanceOf(SparkExecutionError);
    if (spark35) {
      // 3.5 names the failed task's error class, not the file: a batch is split until the file is alone.
      expect(error).toMatchObject({ code: "SPARK_BAD_INPUT", filePath: undefined });
      expect(error.causes[0]?.errorClass).toBe("MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION");
      return;
    }
    expect(error).toMatchObject({ code: "SPARK_BAD_INPUT", errorClass: "FAILED_READ_FILE.NO_HINT" });
    expect(error.filePath).toBe(`file://${path}`);
  });

  it("a text file read as Parquet with a schema is bad input, and named", async () => {
    const path = join(dir, "text.parquet");
    writeFileSync(path, "hello, this is not parquet\n".repeat(10));
    const error = await rejection(
      client.read({ format: "parquet", schema: "id INT", paths: [path] }).collect(),
    );
    expect(error).toMatchObject({ code: "SPARK_BAD_INPUT", retryable: false });
    expect(error.filePath).toBe(spelled(path));
  });

  it("a text file read as Parquet without a schema fails reading its footer: bad input, named", async () => {
    const path = join(dir, "footer.parquet");
    writeFileSync(path, "hello, this is not parquet either\n".repeat(10));
    const error = await rejection(client.read({ format: "parquet", paths: [path] }).collect());
    if (spark35) {
      // 3.5 reports only "Exception thrown in awaitResult" from inferring the schema: nothing says the file
      // is at fault, so it is retried like any failure it cannot judge.
      expect(error).toMatchObject({ code: "SPARK_EXECUTION", retryable: true, filePath: undefined });
      return;
    }
    expect(error.causes.some((c) => c.errorClass === "FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER")).toBe(true);
    expect(error).toMatchObject({ code: "SPARK_BAD_INPUT", retryable: false });
    // Spark prints the footer error's path as a Hadoop Path: file:/…, not percent-encoded.
    expect(error.filePath).toBe(`file:${path}`);
  });

  it("a truncated Parquet file is bad input", async () => {
    const out = join(dir, "good");
    await client.sqlCommand(`INSERT OVERWRITE DIRECTORY '${out}' USING parquet SELECT id FROM range(100)`);
    const name = readdirSync(out).find((n) => n.endsWith(".parquet"));
    if (!name) throw new Error("Spark wrote no Parquet file");
    const bytes = readFileSync(join(out, name));
    const path = join(dir, "truncated.parquet");
    writeFileSync(path, bytes.subarray(0, bytes.length - 20));
    const error = await rejection(
      client.read({ format: "parquet", schema: "id BIGINT", paths: [path] }).collect(),
    );
    expect(error).toMatchObject({ code: "SPARK_BAD_INPUT", retryable: false, filePath: spelled(path) });
  });

  it("a text file read as ORC is bad input", async () => {
    const path = join(dir, "text.orc");
    writeFileSync(path, "hello, this is not orc\n".repeat(10));
    const error = await rejection(client.read({ format: "orc", schema: "id INT", paths: [path] }).collect());
    expect(error).toMatchObject({ code: "SPARK_BAD_INPUT", retryable: false, filePath: spelled(path) });
  });

  it("a missing path is named too", async () => {
    const path = join(dir, "missing.json");
    const error = await rejection(client.read({ format: "json", paths: [path] }).collect());
    expect(error).toMatchObject({ errorClass: "PATH_NOT_FOUND", filePath: `file:${path}` });
  });
});

describe("Iceberg facts", () => {
  /** Two rows, one data file once written. */
  const input = (through: SparkConnectClient = client): ReturnType<SparkConnectClient["read"]> => {
    const path = join(dir, "rows.json");
    writeFileSync(path, '{"id":1,"f":"a"}\n{"id":2,"f":"b"}\n');
    return through.read({ format: "json", schema: "id BIGINT, f STRING", paths: [path] });
  };

  it("table not found, already exists, unaligned overwrite", async () => {
    const table = `${namespace}.t_create`;
    const missing = await rejection(input().writeTo(table).append());
    expect(isTableNotFound(missing)).toBe(true);
    expect(isTableAlreadyExists(missing)).toBe(false);

    await input().writeTo(table).using("iceberg").create();
    const exists = await rejection(input().writeTo(table).using("iceberg").create());
    expect(isTableAlreadyExists(exists)).toBe(true);
    expect(isTableNotFound(exists)).toBe(false);

    // Both rows sit in one data file: a filter matching one of them cannot drop whole files.
    const unaligned = await rejection(
      input()
        .writeTo(table)
        .overwrite(fn("==", col("f"), lit("a"))),
    );
    expect(isUnalignedOverwrite(unaligned)).toBe(true);
    expect(unaligned.filePath).toBeUndefined();
  });

  it("a procedure on a missing table", async () => {
    const error = await rejection(
      client.sqlCommand(`CALL lake.system.cherrypick_snapshot('${schema}.no_such_table', 1)`),
    );
    // 3.5 sends the procedure's RuntimeException without its NoSuchTableException cause.
    expect(isTableNotFound(error)).toBe(!spark35);
  });

  it("publishing staged snapshots: gone, already published, not cherry-pickable", async () => {
    const table = `${namespace}.t_wap`;
    const cherrypick = (id: string): Promise<Row[]> =>
      client.sqlCommand(`CALL lake.system.cherrypick_snapshot('${schema}.t_wap', ${id})`);
    await client.sqlCommand(
      `CREATE TABLE ${table} (id BIGINT, f STRING) USING iceberg TBLPROPERTIES ('write.wap.enabled'='true')`,
    );
    await client.sqlCommand(`INSERT INTO ${table} VALUES (0, 'z')`);
    // Writes staged under a WAP id, from a session of their own.
    const stager = new SparkConnectClient({ remote, deadlineMs: 120_000 });
    const stage = async (
      wapId: string,
      write: (rows: ReturnType<typeof input>) => Promise<void>,
    ): Promise<string> => {
      await stager.setConfig({ "spark.wap.id": wapId });
      await write(input(stager));
      const [row] = await client.sql(
        `SELECT CAST(snapshot_id AS STRING) AS id FROM ${table}.snapshots WHERE summary['wap.id'] = :wapId`,
        { wapId },
      );
      return String(row?.id);
    };
    let append: string, overwrite1: string, overwrite2: string;
    try {
      append = await stage("append-1", (rows) => rows.writeTo(table).append());
      overwrite1 = await stage("overwrite-1", (rows) =>
        rows.writeTo(table).overwrite(fn("==", col("f"), lit("z"))),
      );
      overwrite2 = await stage("overwrite-2", (rows) =>
        rows.writeTo(table).overwrite(fn("==", col("f"), lit("z"))),
      );
    } finally {
      await stager.close();
    }
    const [first] = await client.sql(
      `SELECT CAST(snapshot_id AS STRING) AS id FROM ${table}.snapshots WHERE parent_id IS NULL`,
    );

    const unknown = await rejection(cherrypick("123456789"));
    expect(isStagedSnapshotGone(unknown)).toBe(true);
    expect([isAlreadyPublished(unknown), isNotCherrypickable(unknown)]).toEqual([false, false]);
    const unknownWap = await rejection(
      client.sqlCommand(`CALL lake.system.publish_changes('${schema}.t_wap', 'no-such-wap-id')`),
    );
    expect(isStagedSnapshotGone(unknownWap)).toBe(true);

    // The overwrite staged on the current state fast-forwards; the other overwrite's parent is then stale.
    await cherrypick(overwrite1);
    const stale = await rejection(cherrypick(overwrite2));
    expect(isNotCherrypickable(stale)).toBe(true);
    expect([isStagedSnapshotGone(stale), isAlreadyPublished(stale)]).toEqual([false, false]);

    await cherrypick(append);
    const again = await rejection(cherrypick(append));
    expect(isAlreadyPublished(again)).toBe(true);
    expect(again.exceptionClass).toBe("org.apache.iceberg.exceptions.DuplicateWAPCommitException");
    const ancestor = await rejection(cherrypick(String(first?.id)));
    expect(isAlreadyPublished(ancestor)).toBe(true);
    expect(ancestor.exceptionClass).toBe("org.apache.iceberg.exceptions.CherrypickAncestorCommitException");
    expect([isNotCherrypickable(again), isNotCherrypickable(ancestor)]).toEqual([false, false]);
  });
});
