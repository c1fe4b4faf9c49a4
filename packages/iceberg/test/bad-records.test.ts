import { randomUUID } from "node:crypto";
import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { BadRecordsError, rejectedTableOf, type WriteBatch } from "../src/index.ts";
import { badRecordLimit, topLevelColumns } from "../src/bad-records.ts";
import { file, newTable, spark, useSpark, writer } from "./helpers.ts";

useSpark("bad-records", { tablePrefix: "b" });

const batchOf = (table: string, files: string[], extra: Partial<WriteBatch> = {}): WriteBatch => ({
  batchId: randomUUID(),
  table,
  format: "json",
  schema: "id BIGINT, v STRING",
  files,
  ...extra,
});

const quote = (table: string): string =>
  table
    .split(".")
    .map((part) => `\`${part}\``)
    .join(".");

async function rowsOf(table: string): Promise<string[]> {
  const rows = await spark.sql(`SELECT id, v, _source_file FROM ${quote(table)} ORDER BY _source_file, id`);
  return rows.map((row) => `${String(row._source_file).split("/").pop()}:${String(row.id)}:${String(row.v)}`);
}

async function rejectedOf(table: string): Promise<Record<string, unknown>[]> {
  return spark.sql(
    `SELECT _source_file, record_number, raw_record, error, _batch_id, _ingested_at
       FROM ${quote(rejectedTableOf(table))} ORDER BY _source_file, record_number`,
  );
}

async function tableExists(table: string): Promise<boolean> {
  const [catalog, namespace, name] = table.split(".");
  const namespaces = await spark.sql(`SHOW NAMESPACES IN \`${catalog}\``);
  if (!namespaces.some((row) => row.namespace === namespace)) return false;
  const rows = await spark.sql(`SHOW TABLES IN \`${catalog}\`.\`${namespace}\``);
  return rows.some((row) => row.tableName === name);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the promise to reject");
}

/** Two good records, then one that is not JSON, one whose id is not a number, and a good one (a blank line between). */
const MIXED_JSON =
  '{"id":1,"v":"a"}\n{"id":2,"v":"b"}\n{"id":3,"v":\n{"id":"x","v":"d"}\n\n{"id":5,"v":"e"}\n';

describe("bad records (IcebergWriter)", () => {
  it("continue: good records land, bad ones go to <table>__rejected in the same batch, with file, record number and error", async () => {
    const table = newTable();
    const good = await file("continue/good.json", '{"id":10,"v":"g"}\n');
    const mixed = await file("continue/mixed.json", MIXED_JSON);
    const batch = batchOf(table, [good, mixed], { badRecords: { onError: "continue" } });

    const result = await writer.write(batch);

    expect(Object.fromEntries(result.records)).toEqual({ [good]: 1, [mixed]: 3 });
    expect(Object.fromEntries(result.recordCounts ?? [])).toEqual({
      [good]: { parsed: 1, rejected: 0 },
      [mixed]: {
        parsed: 5,
        rejected: 2,
        firstError: 'record 3: malformed JSON: {"id":3,"v":',
      },
    });
    expect(await rowsOf(table)).toEqual([
      "good.json:10:g",
      "mixed.json:1:a",
      "mixed.json:2:b",
      "mixed.json:5:e",
    ]);
    const rejected = await rejectedOf(table);
    expect(rejected.map(({ _ingested_at, ...row }) => row)).toEqual([
      {
        _source_file: mixed,
        record_number: 3,
        raw_record: '{"id":3,"v":',
        error: "malformed JSON",
        _batch_id: batch.batchId,
      },
      {
        _source_file: mixed,
        record_number: 4,
        raw_record: '{"id":"x","v":"d"}',
        error: "value does not fit the schema in column(s) id",
        _batch_id: batch.batchId,
      },
    ]);
    // The quarantine rows carry the batch's _ingested_at, as its table rows do.
    const [mark] = await spark.sql(`SELECT max(_ingested_at) AS at FROM ${quote(table)}`);
    expect(rejected.every((row) => String(row._ingested_at) === String(mark?.at))).toBe(true);
  });

  it("continue: the staged bad records stay invisible until published, like the rows", async () => {
    const table = newTable();
    const mixed = await file("staged/mixed.json", MIXED_JSON);
    const staged = await writer.stage(batchOf(table, [mixed], { badRecords: { onError: "continue" } }));
    expect(staged.rejected?.table).toBe(rejectedTableOf(table));
    expect(await rejectedOf(table)).toEqual([]);
    expect(await rowsOf(table)).toEqual([]);

    const rejected = staged.rejected!;
    expect((await writer.publish(rejected.table, rejected.stagedSnapshotId)).kind).toBe("published");
    expect((await writer.publish(rejected.table, rejected.stagedSnapshotId)).kind).toBe("already-published");
    expect(await rejectedOf(table)).toHaveLength(2);
  });

  it("continue: a batch without bad records writes no quarantine table", async () => {
    const table = newTable();
    const good = await file("clean/good.json", '{"id":1,"v":"a"}\n{"id":2,"v":"b"}\n');
    const staged = await writer.stage(batchOf(table, [good], { badRecords: { onError: "continue" } }));
    expect(staged.rejected).toBeUndefined();
    expect(Object.fromEntries(staged.recordCounts ?? [])).toEqual({ [good]: { parsed: 2, rejected: 0 } });
    expect(await tableExists(rejectedTableOf(table))).toBe(false);
  });

  it("continue with maxBadRecords as a count: a file beyond it fails, nothing of the batch is written", async () => {
    const table = newTable();
    const good = await file("count/good.json", '{"id":1,"v":"a"}\n');
    const mixed = await file("count/mixed.json", MIXED_JSON);
    const error = await rejection(
      writer.write(
        batchOf(table, [good, mixed], { badRecords: { onError: "continue", maxBadRecords: { count: 1 } } }),
      ),
    );
    expect(error).toBeInstanceOf(BadRecordsError);
    const refused = (error as BadRecordsError).refused;
    expect([...refused.keys()]).toEqual([mixed]);
    expect(refused.get(mixed)).toMatchObject({ status: "FAILED", counts: { parsed: 5, rejected: 2 } });
    expect(refused.get(mixed)?.message).toMatch(
      /^2 of 5 records are bad, more than maxBadRecords \(1\); the file fails .*First: record 3: malformed JSON/,
    );
    expect(await tableExists(table)).toBe(false);

    // Within the limit (2 bad records allowed) the file lands with its bad records set apart.
    const result = await writer.write(
      batchOf(table, [good, mixed], { badRecords: { onError: "continue", maxBadRecords: { count: 2 } } }),
    );
    expect(Object.fromEntries(result.records)).toEqual({ [good]: 1, [mixed]: 3 });
    expect(await rejectedOf(table)).toHaveLength(2);
  });

  it("maxBadRecords as a percentage: 2 bad of 5 is beyond 39% and within 40%", async () => {
    const table = newTable();
    const mixed = await file("percent/mixed.json", MIXED_JSON);
    const beyond = await rejection(
      writer.write(
        batchOf(table, [mixed], { badRecords: { onError: "continue", maxBadRecords: { percent: 39 } } }),
      ),
    );
    expect((beyond as BadRecordsError).refused.get(mixed)?.message).toMatch(
      /more than maxBadRecords \(39%\)/,
    );
    const within = await writer.write(
      batchOf(table, [mixed], { badRecords: { onError: "continue", maxBadRecords: { percent: 40 } } }),
    );
    expect(within.records.get(mixed)).toBe(3);
  });

  it("skipFile: a file with any bad record is SKIPPED whole with its first error; with maxBadRecords it lands within the limit", async () => {
    const table = newTable();
    const good = await file("skip/good.json", '{"id":1,"v":"a"}\n');
    const mixed = await file("skip/mixed.json", MIXED_JSON);
    const error = await rejection(
      writer.write(batchOf(table, [good, mixed], { badRecords: { onError: "skipFile" } })),
    );
    const refusal = (error as BadRecordsError).refused.get(mixed);
    expect(refusal?.status).toBe("SKIPPED");
    expect(refusal?.counts.firstError).toBe('record 3: malformed JSON: {"id":3,"v":');
    expect(refusal?.message).toMatch(
      /more than maxBadRecords \(0\); the file is skipped and nothing of it lands/,
    );
    expect(await tableExists(table)).toBe(false);

    // The batch without it (as the pipeline writes it again) lands.
    const rest = await writer.write(batchOf(table, [good], { badRecords: { onError: "skipFile" } }));
    expect(Object.fromEntries(rest.records)).toEqual({ [good]: 1 });

    // SKIP_FILE_n: up to 2 bad records are set apart, not a reason to skip.
    const tolerated = await writer.write(
      batchOf(table, [mixed], { badRecords: { onError: "skipFile", maxBadRecords: { count: 2 } } }),
    );
    expect(tolerated.records.get(mixed)).toBe(3);
    expect((await rejectedOf(table)).map((row) => row.record_number)).toEqual([3, 4]);
  });

  it("CSV: a short row, a long row and a value of the wrong type are rejected with their record numbers", async () => {
    const table = newTable();
    const csv = await file("csv/a.csv", "id,v\n1,a\n2\nx,c\n4,d,extra\n5,e\n");
    const result = await writer.write(
      batchOf(table, [csv], {
        format: "csv",
        options: { header: "true" },
        badRecords: { onError: "continue" },
      }),
    );
    expect(result.records.get(csv)).toBe(2);
    expect(result.recordCounts?.get(csv)).toMatchObject({ parsed: 5, rejected: 3 });
    expect((await rejectedOf(table)).map((row) => [row.record_number, row.raw_record, row.error])).toEqual([
      [2, "2", "no value for column(s) v"],
      [3, "x,c", "no value for column(s) id"],
      [4, "4,d,extra", "malformed CSV record (field count or a value)"],
    ]);
  });

  it("an inferred schema: malformed JSON is set apart; a clean batch has no corrupt-record column to drop", async () => {
    const table = newTable();
    const clean = await file("inferred/clean.json", '{"id":1,"v":"a"}\n');
    const first = await writer.write(
      batchOf(table, [clean], { schema: undefined, badRecords: { onError: "continue" } }),
    );
    expect(first.records.get(clean)).toBe(1);
    const columns = await spark.sql(`DESCRIBE TABLE ${quote(table)}`);
    expect(columns.map((row) => row.col_name)).not.toContain("_lakeferry_corrupt_record");

    const broken = await file("inferred/broken.json", '{"id":2,"v":"b"}\n{"id":3,\n');
    const second = await writer.write(
      batchOf(table, [broken], { schema: undefined, badRecords: { onError: "continue" } }),
    );
    expect(second.records.get(broken)).toBe(1);
    expect((await rejectedOf(table)).map((row) => [row.record_number, row.raw_record, row.error])).toEqual([
      [2, '{"id":3,', "malformed JSON"],
    ]);
  });

  it("a modified file replaces its rows; its new bad records are added to the quarantine beside the old ones", async () => {
    const table = newTable();
    const path = "replace/orders.json";
    const uri = await file(path, MIXED_JSON);
    const first = batchOf(table, [uri], { badRecords: { onError: "continue" }, isolateFiles: true });
    await writer.write(first);
    await file(path, '{"id":20,"v":"new"}\n{"id":"y","v":"z"}\n');
    const second = batchOf(table, [uri], {
      badRecords: { onError: "continue" },
      isolateFiles: true,
      mode: "replace",
    });
    const result = await writer.write(second);
    expect(result.records.get(uri)).toBe(1);
    expect(await rowsOf(table)).toEqual(["orders.json:20:new"]);
    expect((await rejectedOf(table)).map((row) => [row._batch_id, row.record_number])).toEqual(
      expect.arrayContaining([
        [first.batchId, 3],
        [first.batchId, 4],
        [second.batchId, 2],
      ]),
    );
    expect(await rejectedOf(table)).toHaveLength(3);
  });

  it("with schema evolution: bad records are set apart whether new columns join the table (addNewColumns) or files are read with its columns (none)", async () => {
    const tolerant = { schema: undefined, badRecords: { onError: "continue" as const } };
    const table = newTable();
    const first = await file("evolve/a.json", '{"id":1,"v":"a"}\n');
    await writer.write(batchOf(table, [first], { ...tolerant, schemaEvolution: "addNewColumns" }));
    const second = await file("evolve/b.json", '{"id":2,"v":"b","extra":"x"}\n{"id":3,\n');
    const added = await writer.write(
      batchOf(table, [second], { ...tolerant, schemaEvolution: "addNewColumns" }),
    );
    expect(added.records.get(second)).toBe(1);
    const columns = (await spark.sql(`DESCRIBE TABLE ${quote(table)}`)).map((row) => row.col_name);
    expect(columns).toContain("extra");
    expect(columns).not.toContain("_lakeferry_corrupt_record");
    expect((await rejectedOf(table)).map((row) => [row.record_number, row.error])).toEqual([
      [2, "malformed JSON"],
    ]);

    // Read with the table's own columns (id BIGINT, v STRING): a string id does not fit.
    const fixed = newTable();
    await writer.write(batchOf(fixed, [first], { ...tolerant, schemaEvolution: "none" }));
    const third = await file("evolve/c.json", '{"id":"x","v":"c"}\n{"id":4,"v":"d"}\n');
    const kept = await writer.write(batchOf(fixed, [third], { ...tolerant, schemaEvolution: "none" }));
    expect(kept.records.get(third)).toBe(1);
    expect((await rejectedOf(fixed)).map((row) => [row._source_file, row.record_number, row.error])).toEqual([
      [third, 1, "value does not fit the schema in column(s) id"],
    ]);
  });

  it("abortFile (the default) still fails the batch at the first bad record", async () => {
    const table = newTable();
    const mixed = await file("abort/mixed.json", MIXED_JSON);
    const error = await rejection(writer.write(batchOf(table, [mixed])));
    expect(error).not.toBeInstanceOf(BadRecordsError);
    expect(String((error as Error).message)).toMatch(/MALFORMED_RECORD_IN_PARSING|Malformed/i);
  });

  it("refuses maxBadRecords with abortFile and a percentage above 100", async () => {
    const table = newTable();
    const mixed = await file("refuse/mixed.json", MIXED_JSON);
    expect(() =>
      writer.stage(
        batchOf(table, [mixed], { badRecords: { onError: "abortFile", maxBadRecords: { count: 1 } } }),
      ),
    ).toThrow(/badRecords.maxBadRecords: abortFile fails a file at its first bad record/);
    expect(() =>
      writer.stage(
        batchOf(table, [mixed], { badRecords: { onError: "continue", maxBadRecords: { percent: 120 } } }),
      ),
    ).toThrow(InvalidInputError);
  });

  it("allows a percentage's limit exactly, whatever floating point makes of it", () => {
    expect(badRecordLimit({ onError: "continue", maxBadRecords: { percent: 0.57 } }, 10_000)).toBe(57);
    expect(badRecordLimit({ onError: "continue", maxBadRecords: { percent: 1 } }, 150)).toBe(1);
    expect(badRecordLimit({ onError: "continue", maxBadRecords: { percent: 1 } }, 99)).toBe(0);
    expect(badRecordLimit({ onError: "continue" }, 99)).toBe(Infinity);
    expect(badRecordLimit({ onError: "skipFile" }, 99)).toBe(0);
  });

  it("reads top-level column names from a DDL schema", () => {
    expect(
      topLevelColumns(
        "id BIGINT, `odd, name` STRING, s STRUCT<a: INT, b: MAP<STRING, INT>>, d DECIMAL(10, 2)",
      ),
    ).toEqual(["id", "odd, name", "s", "d"]);
  });
});
