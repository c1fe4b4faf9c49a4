import { randomUUID } from "node:crypto";
import { readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { InvalidInputError } from "@lakeferry/core";
import { col, SparkConnectClient, SparkConnectError, type Row } from "@lakeferry/spark-connect";
import { describe, expect, it } from "vitest";
import { s3Fixture } from "../../storage/test/fixtures.ts";
import { IcebergWriter, verbatimSparkPath, type WriteBatch } from "../src/index.ts";
import { lookupVerbatim } from "../src/source-file-column.ts";
import { dir, file, newTable, remote, spark, useSpark, writer } from "./helpers.ts";

useSpark("iceberg");

const jsonLines = (rows: object[]): string => rows.map((row) => JSON.stringify(row) + "\n").join("");

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

/**
 * The snapshots on the table's current lineage that published a batch (the empty create has none): the
 * staged snapshot itself when publishing fast-forwarded, else the cherry-picked copy (`published-wap-id`).
 */
async function snapshots(table: string): Promise<Row[]> {
  return spark.sql(
    `SELECT s.snapshot_id, s.operation,
            coalesce(s.summary['lakeferry.batch-id'], s.summary['published-wap-id']) AS batch_id
       FROM ${quote(table)}.snapshots s JOIN ${quote(table)}.history h ON h.snapshot_id = s.snapshot_id
      WHERE h.is_current_ancestor
        AND coalesce(s.summary['lakeferry.batch-id'], s.summary['published-wap-id']) IS NOT NULL
      ORDER BY s.committed_at`,
  );
}

async function countsByFile(table: string): Promise<Record<string, number>> {
  const rows = await spark.sql(
    `SELECT _source_file, count(*) AS n FROM ${quote(table)} GROUP BY _source_file`,
  );
  return Object.fromEntries(rows.map((row) => [String(row._source_file), Number(row.n)]));
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error("expected the promise to reject");
}

describe("IcebergWriter", () => {
  it("creates the table from JSON lines, tags rows, marks the snapshot and counts per file", async () => {
    const table = newTable();
    const a = await file(
      "json/a.json",
      jsonLines([
        { id: 1, v: "a" },
        { id: 2, v: "a" },
      ]),
    );
    const b = await file(
      "json/b.json",
      jsonLines([
        { id: 3, v: "b" },
        { id: 4, v: "b" },
        { id: 5, v: "b" },
      ]),
    );
    const empty = await file("json/empty.json", "");
    const first = batchOf(table, [a, b, empty]);

    const result = await writer.write(first);
    expect(Object.fromEntries(result.records)).toEqual({ [a]: 2, [b]: 3, [empty]: 0 });
    expect(await countsByFile(table)).toEqual({ [a]: 2, [b]: 3 });

    const [snapshot] = await snapshots(table);
    expect(String(snapshot?.snapshot_id)).toBe(result.snapshotId);
    expect(snapshot?.batch_id).toBe(first.batchId);

    // One _ingested_at literal per batch, equal to the summary mark.
    const marks = await spark.sql(
      `SELECT DISTINCT t._ingested_at AS at, s.summary['lakeferry.ingested-at'] AS mark
         FROM ${quote(table)} t CROSS JOIN ${quote(table)}.snapshots s
        WHERE s.summary['lakeferry.ingested-at'] IS NOT NULL`,
    );
    expect(marks).toHaveLength(1);
    expect(marks[0]?.at).toBeInstanceOf(Date);
    expect(String(marks[0]?.mark).slice(0, 23)).toBe((marks[0]?.at as Date).toISOString().slice(0, 23));

    const props = await spark.sql(`SHOW TBLPROPERTIES ${quote(table)}`);
    const property = (key: string): unknown => props.find((row) => row.key === key)?.value;
    expect(property("format-version")).toBe("2");
    expect(property("write.metadata.metrics.column._source_file")).toBe("full");

    // A later append is counted from its own snapshot only (incremental read from the parent).
    const c = await file("json/c.json", jsonLines([{ id: 6, v: "c" }]));
    const second = await writer.write(batchOf(table, [c]));
    expect(Object.fromEntries(second.records)).toEqual({ [c]: 1 });
    expect(second.snapshotId).not.toBe(result.snapshotId);
    expect(await snapshots(table)).toHaveLength(2);
  });

  it("counts per file from the manifests, and by reading rows where the bounds cannot tell", async () => {
    // A table made elsewhere, keeping only 8-character bounds: files whose URIs share that prefix cannot be
    // told apart by their bounds, so the writer reads the staged rows instead (counts stay exact).
    const truncated = newTable();
    await spark.sqlCommand(
      `CREATE TABLE ${quote(truncated)} (id BIGINT, v STRING, _source_file STRING, _ingested_at TIMESTAMP)
       USING iceberg TBLPROPERTIES ('format-version' = '2', 'write.metadata.metrics.default' = 'truncate(8)')`,
    );
    const same = await Promise.all(
      [2, 3].map((n, i) =>
        file(
          `bounds/same-prefix-${i}.json`,
          jsonLines(Array.from({ length: n }, (_, id) => ({ id, v: "t" }))),
        ),
      ),
    );
    const inTruncated = await writer.write(batchOf(truncated, same));
    expect(Object.fromEntries(inTruncated.records)).toEqual({ [same[0]!]: 2, [same[1]!]: 3 });

    // A table this writer created keeps full bounds: each isolated data file names its one source file.
    const full = newTable();
    const files = await Promise.all(
      [1, 4, 0].map((n, i) =>
        file(`bounds/full-${i}.json`, jsonLines(Array.from({ length: n }, (_, id) => ({ id, v: "f" })))),
      ),
    );
    const inFull = await writer.write(batchOf(full, files));
    expect(Object.fromEntries(inFull.records)).toEqual({ [files[0]!]: 1, [files[1]!]: 4, [files[2]!]: 0 });
    const bounds = await spark.sql(
      `SELECT readable_metrics._source_file.lower_bound AS lower, readable_metrics._source_file.upper_bound AS upper
         FROM ${quote(full)}.files`,
    );
    expect(bounds).toHaveLength(2);
    for (const row of bounds) expect(row.lower).toBe(row.upper);
  });

  it("reads CSV with a header", async () => {
    const table = newTable();
    const x = await file("csv/x.csv", "id,v\n1,one\n2,two\n");
    const y = await file("csv/y.csv", "id,v\n3,three\n");
    const result = await writer.write(batchOf(table, [x, y], { format: "csv", options: { header: "true" } }));
    expect(Object.fromEntries(result.records)).toEqual({ [x]: 2, [y]: 1 });
    const rows = await spark.sql(`SELECT id, v FROM ${quote(table)} ORDER BY id`);
    expect(rows).toEqual([
      { id: 1, v: "one" },
      { id: 2, v: "two" },
      { id: 3, v: "three" },
    ]);
  });

  it("reads Parquet written by Spark, with its own schema", async () => {
    const table = newTable();
    const parts: string[] = [];
    for (const [name, n] of [
      ["p1", 3],
      ["p2", 5],
    ] as const) {
      const out = join(dir, "parquet", name);
      // Test-owned literal path; one part file per folder.
      await spark.sqlCommand(
        `INSERT OVERWRITE DIRECTORY 'file://${out}' USING parquet
         SELECT /*+ COALESCE(1) */ id, concat('row-', id) AS label FROM range(${n})`,
      );
      const part = (await readdir(out)).find(
        (entry) => entry.startsWith("part-") && entry.endsWith(".parquet"),
      );
      if (!part) throw new Error(`no parquet part file in ${out}`);
      parts.push(`file://${join(out, part)}`);
    }
    const result = await writer.write(batchOf(table, parts, { format: "parquet", schema: undefined }));
    expect(Object.fromEntries(result.records)).toEqual({ [parts[0]!]: 3, [parts[1]!]: 5 });
    const columns = (await spark.sql(`DESCRIBE TABLE ${quote(table)}`)).map((row) => row.col_name);
    expect(columns.slice(0, 4)).toEqual(["id", "label", "_source_file", "_ingested_at"]);
  });

  it("commits 50 files as ONE snapshot with the exact URI of each row's file, awkward names included", async () => {
    const table = newTable();
    const names = [
      ...Array.from({ length: 45 }, (_, i) => `f-${i}.json`),
      "with space.json",
      "plus+sign.json",
      "glob[1].json",
      "percent%41 #hash.json",
      "ünïcödé {x}.json",
    ];
    const files: string[] = [];
    const expected: Record<string, number> = {};
    for (const [index, name] of names.entries()) {
      const rows = Array.from({ length: (index % 3) + 1 }, (_, j) => ({
        id: index * 10 + j,
        v: String(index),
      }));
      const uri = await file(`many/${name}`, jsonLines(rows));
      files.push(uri);
      expected[uri] = rows.length;
    }

    const result = await writer.write(batchOf(table, files));
    expect(Object.fromEntries(result.records)).toEqual(expected);
    expect(await snapshots(table)).toHaveLength(1);

    // Every row carries the URI of the very file it was read from.
    const pairs = await spark.sql(`SELECT DISTINCT _source_file, v FROM ${quote(table)}`);
    expect(pairs).toHaveLength(names.length);
    for (const pair of pairs) expect(pair._source_file).toBe(files[Number(pair.v)]);
  });

  it("reads files whose names Spark skips (_x, .x, in hidden folders, gzipped, awkward) with every row", async () => {
    const table = newTable();
    const names = [
      "hidden/_under.json",
      "hidden/.dot.json",
      "hidden/_dir/_inner.json",
      "hidden/.dir/plain.json",
      "hidden/_with space %41 #[1].json",
      "hidden/plain.json",
    ];
    const files: string[] = [];
    const expected: Record<string, number> = {};
    for (const [index, name] of names.entries()) {
      const rows = Array.from({ length: index + 1 }, (_, j) => ({ id: index * 10 + j, v: String(index) }));
      files.push(await file(name, jsonLines(rows)));
      expected[files[index] as string] = rows.length;
    }
    // Hadoop picks the codec by the name's suffix: the alias keeps ".json.gz".
    const gzipped = join(dir, "hidden/_packed.json.gz");
    await writeFile(gzipped, gzipSync(jsonLines([{ id: 99, v: "gz" }])));
    files.push(`file://${gzipped}`);
    expected[`file://${gzipped}`] = 1;

    // Named as they are, Spark reads nothing from the first two (the data loss this guards against).
    const direct = await spark
      .read({ format: "json", schema: "id BIGINT, v STRING", paths: files.slice(0, 2) })
      .collect();
    expect(direct).toHaveLength(0);

    const result = await writer.write(batchOf(table, files));
    expect(Object.fromEntries(result.records)).toEqual(expected);
    expect(await countsByFile(table)).toEqual(expected);
  });

  it("reads an S3 object whose name Spark skips (s3a through the alias)", async () => {
    const bucket = await s3Fixture.createContainer("hidden");
    await bucket.put("in/_h.json", jsonLines([{ id: 1, v: "s3" }]));
    const uri = `${bucket.rootUri}in/_h.json`;
    const table = newTable();
    const result = await writer.write({ ...batchOf(table, [uri]), readPaths: [uri.replace(/^s3:/, "s3a:")] });
    expect(Object.fromEntries(result.records)).toEqual({ [uri]: 1 });
    expect(await countsByFile(table)).toEqual({ [uri]: 1 });
  });

  it("finds a plainly named file by the path Spark prints, without decoding it per row", async () => {
    const names = [...Array.from({ length: 37 }, (_, i) => `p-${i}.json`), "plus+sign.json", "a=b,c.json"];
    const files: string[] = [];
    for (const [index, name] of names.entries()) {
      files.push(await file(`plain/${name}`, jsonLines([{ id: index, v: String(index) }])));
    }
    const printed = new Map<string, string>();
    for (const uri of files) printed.set(verbatimSparkPath(uri) ?? "", uri);
    expect(printed.size).toBe(files.length);
    const rows = await spark
      .read({ format: "json", schema: "id BIGINT, v STRING", paths: files })
      .select(col("v"), lookupVerbatim(printed, col("_metadata.file_path")).alias("source"))
      .collect();
    expect(rows).toHaveLength(files.length);
    for (const row of rows) expect(row.source).toBe(files[Number(row.v)]);
  });

  it("stages a batch invisibly; publishing makes it current once, and a second publish is refused", async () => {
    const table = newTable();
    const a = await file(
      "stage/a.json",
      jsonLines([
        { id: 1, v: "a" },
        { id: 2, v: "a" },
      ]),
    );
    await writer.write(batchOf(table, [await file("stage/first.json", jsonLines([{ id: 0, v: "0" }]))]));
    const batch = batchOf(table, [a]);

    const staged = await writer.stage(batch);
    expect(Object.fromEntries(staged.records)).toEqual({ [a]: 2 });
    expect(await countsByFile(table)).not.toHaveProperty([a]); // staged: not visible
    const marked = await spark.sql(
      `SELECT summary['wap.id'] AS wap FROM ${quote(table)}.snapshots WHERE snapshot_id = ${staged.stagedSnapshotId}`,
    );
    expect(marked[0]?.wap).toBe(batch.batchId);

    const published = await writer.publish(table, staged.stagedSnapshotId);
    expect(published.kind).toBe("published");
    expect(await countsByFile(table)).toHaveProperty([a], 2);
    expect(await writer.publish(table, staged.stagedSnapshotId)).toEqual({ kind: "already-published" });
    expect(await countsByFile(table)).toHaveProperty([a], 2);
    expect(await writer.hasBatchRows(table, staged.ingestedAtMicros, [a])).toBe(true);
  });

  it("a table whose staging was turned off by hand commits at once, says so, and stages again after", async () => {
    const table = newTable();
    await writer.write(batchOf(table, [await file("unstaged/first.json", jsonLines([{ id: 0, v: "0" }]))]));
    await spark.sqlCommand(`ALTER TABLE ${quote(table)} SET TBLPROPERTIES ('write.wap.enabled' = 'false')`);
    const a = await file("unstaged/a.json", jsonLines([{ id: 1, v: "a" }]));
    const direct = await writer.stage(batchOf(table, [a]));
    expect(direct.visible).toBe(true);
    expect(await countsByFile(table)).toHaveProperty([a], 1);
    const b = await file("unstaged/b.json", jsonLines([{ id: 2, v: "b" }]));
    const staged = await writer.stage(batchOf(table, [b]));
    expect(staged.visible).toBeUndefined();
    expect(await countsByFile(table)).not.toHaveProperty([b]);
  });

  it("a staged snapshot that maintenance expired cannot be published; the rows tell published from not", async () => {
    const table = newTable();
    await writer.write(batchOf(table, [await file("expire/first.json", jsonLines([{ id: 0, v: "0" }]))]));
    const a = await file("expire/a.json", jsonLines([{ id: 1, v: "a" }]));
    const b = await file("expire/b.json", jsonLines([{ id: 2, v: "b" }]));
    const never = await writer.stage(batchOf(table, [a]));
    const published = await writer.stage(batchOf(table, [b]));
    expect((await writer.publish(table, published.stagedSnapshotId)).kind).toBe("published");
    await writer.write(batchOf(table, [await file("expire/later.json", jsonLines([{ id: 3, v: "c" }]))]));

    const [catalog, namespace, name] = table.split(".") as [string, string, string];
    await spark.sqlCommand(
      `CALL ${catalog}.system.expire_snapshots(table => '${namespace}.${name}', older_than => TIMESTAMP '2999-01-01 00:00:00', retain_last => 1)`,
    );
    const outcome = await writer.publish(table, never.stagedSnapshotId);
    expect(outcome.kind).toBe("unpublishable");
    expect(await writer.hasBatchRows(table, never.ingestedAtMicros, [a])).toBe(false);
    // Published and then expired from history: its rows still say so.
    expect(await writer.hasBatchRows(table, published.ingestedAtMicros, [b])).toBe(true);
    expect(await writer.publish(table, published.stagedSnapshotId)).toMatchObject({ kind: "unpublishable" });
    expect(await countsByFile(table)).toEqual({
      [`file://${dir}/expire/first.json`]: 1,
      [b]: 1,
      [`file://${dir}/expire/later.json`]: 1,
    });
  });

  it("replace swaps one file's rows atomically, in one overwrite snapshot", async () => {
    const table = newTable();
    const a = await file(
      "replace/a.json",
      jsonLines([
        { id: 1, v: "old" },
        { id: 2, v: "old" },
      ]),
    );
    const b = await file(
      "replace/b.json",
      jsonLines([
        { id: 3, v: "b" },
        { id: 4, v: "b" },
      ]),
    );
    const c = await file("replace/c.json", jsonLines([{ id: 6, v: "c" }]));
    // Three files: without isolation Spark packs two of them into one read task, so one data file.
    await writer.write(batchOf(table, [a, b, c]));

    await file(
      "replace/a.json",
      jsonLines([
        { id: 1, v: "new" },
        { id: 2, v: "new" },
        { id: 5, v: "new" },
      ]),
    );
    const replace = batchOf(table, [a], { mode: "replace" });
    const result = await writer.write(replace);
    expect(Object.fromEntries(result.records)).toEqual({ [a]: 3 });

    const history = await snapshots(table);
    expect(history.map((row) => row.operation)).toEqual(["append", "overwrite"]);
    expect(String(history[1]?.snapshot_id)).toBe(result.snapshotId);
    const rows = await spark.sql(`SELECT _source_file, v, count(*) AS n FROM ${quote(table)} GROUP BY 1, 2`);
    expect(rows.map((row) => [row._source_file, row.v, Number(row.n)]).sort()).toEqual(
      [
        [a, "new", 3],
        [b, "b", 2],
        [c, "c", 1],
      ].sort(),
    );

    // The overwrite's rows are recognised by the batch's _ingested_at mark.
    expect(
      await writer.hasBatchRows(table, (await writer.stage(batchOf(table, [c]))).ingestedAtMicros, [a]),
    ).toBe(false);
  });

  it("a replace Iceberg cannot do by whole data files fails clearly and for good", async () => {
    const table = newTable();
    const other = new SparkConnectClient({ remote }); // a session without the isolating setting
    try {
      const mixing = new IcebergWriter({ spark: other, isolateSourceFiles: false });
      const files = await Promise.all(
        ["a", "b", "c"].map((name) => file(`unaligned/${name}.json`, jsonLines([{ id: 1, v: name }]))),
      );
      await mixing.write(batchOf(table, files));
      const error = await rejection(mixing.write(batchOf(table, [files[0]!], { mode: "replace" })));
      expect(error).toMatchObject({ code: "ICEBERG_REPLACE_UNALIGNED", retryable: false });
      expect(await snapshots(table)).toHaveLength(1);
    } finally {
      await other.close();
    }
  });

  it("refuses bad input with typed, non-retryable errors and writes nothing", async () => {
    const table = newTable();
    const good = await file("errors/good.json", jsonLines([{ id: 1, v: "x" }]));
    await writer.write(batchOf(table, [good]));

    // A malformed record under the default FAILFAST.
    const corrupt = await file("errors/corrupt.json", '{"id": 2, "v": "y"}\n{"id": 3, "v": \n');
    const malformed = await rejection(writer.write(batchOf(table, [good, corrupt])));
    expect(malformed).toBeInstanceOf(SparkConnectError);
    expect((malformed as SparkConnectError).retryable).toBe(false);

    // A path that does not exist.
    const missing = await rejection(writer.write(batchOf(table, [`file://${dir}/errors/absent.json`])));
    expect(missing).toBeInstanceOf(SparkConnectError);
    expect((missing as SparkConnectError).retryable).toBe(false);

    // Rows that do not fit the table: v is STRING in the table, an array here.
    const other = await file("errors/other.json", jsonLines([{ id: 7, v: ["p", "q"] }]));
    const mismatch = await rejection(
      writer.write(batchOf(table, [other], { schema: "id BIGINT, v ARRAY<STRING>" })),
    );
    expect(mismatch).toBeInstanceOf(SparkConnectError);
    expect((mismatch as SparkConnectError).retryable).toBe(false);

    // A bad table name never reaches Spark.
    const badName = await rejection(writer.write(batchOf("lake.ns.t; DROP TABLE x", [good])));
    expect(badName).toBeInstanceOf(InvalidInputError);
    expect((badName as InvalidInputError).retryable).toBe(false);

    // A file Spark reads that is not in the batch (here: a folder's contents) fails the job rather than
    // writing a wrong _source_file.
    await file("errors/folder/inner.json", jsonLines([{ id: 8, v: "z" }]));
    const unmatched = await rejection(writer.write(batchOf(table, [`file://${dir}/errors/folder`])));
    expect(unmatched).toBeInstanceOf(SparkConnectError);
    expect(String((unmatched as Error).message)).toContain("not in the batch");

    expect(await snapshots(table)).toHaveLength(1);
    expect(await countsByFile(table)).toEqual({ [good]: 1 });
  });

  it("two concurrent first writers to a new table both land", async () => {
    const table = newTable();
    const other = new SparkConnectClient({ remote });
    try {
      const writers = [writer, new IcebergWriter({ spark: other })];
      const files = await Promise.all(
        [0, 1].map((i) =>
          file(
            `race/${i}.json`,
            jsonLines([
              { id: i, v: `w${i}` },
              { id: i + 10, v: `w${i}` },
            ]),
          ),
        ),
      );
      const results = await Promise.all(writers.map((w, i) => w.write(batchOf(table, [files[i]!]))));
      results.forEach((result, i) => expect(Object.fromEntries(result.records)).toEqual({ [files[i]!]: 2 }));
      // This session may have cached the table before the other session's commit (Iceberg's catalog cache).
      await spark.sqlCommand(`REFRESH TABLE ${quote(table)}`);
      expect(await countsByFile(table)).toEqual({ [files[0]!]: 2, [files[1]!]: 2 });
      expect(await snapshots(table)).toHaveLength(2);
    } finally {
      await other.close();
    }
  });
});
