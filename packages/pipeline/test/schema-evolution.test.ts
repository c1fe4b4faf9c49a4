/**
 * `schemaEvolution` with real Spark and Iceberg: the seed's scenario (files of schema A, then files with a
 * new column) under `addNewColumns`, `rescue`, `failOnNewColumns` (with the approval) and `none`, type
 * widening, a type Iceberg cannot change, and schema hints.
 */
import { listFiles, listSchemaChanges } from "@lakeferry/db";
import { afterEach, describe, expect, it } from "vitest";
import { approveSchemaChanges, discoverFiles, waitForRun } from "../src/index.ts";
import { createWorld, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** How many files of each schema the seed's scenario lands (500 each in the seed). */
const FILES = 500;

async function landing(
  w: TestWorld,
  prefix: string,
  count: number,
  row: (i: number) => object,
): Promise<void> {
  for (let start = 0; start < count; start += 50) {
    await Promise.all(
      Array.from({ length: Math.min(50, count - start) }, (_, k) => {
        const i = start + k;
        return w.file(`${prefix}-${String(i).padStart(4, "0")}.json`, JSON.stringify(row(i)) + "\n");
      }),
    );
  }
}

async function ingestAll(w: TestWorld, name: string): Promise<void> {
  const pass = await discoverFiles(w, await w.reload(name));
  await waitForRun(w, pass.run.id, { timeoutMs: 300_000 });
}

async function columns(w: TestWorld, table: string): Promise<Record<string, string>> {
  const rows = await w.spark.sql(`DESCRIBE TABLE ${table}`);
  const result: Record<string, string> = {};
  for (const row of rows) {
    const name = typeof row.col_name === "string" ? row.col_name : "";
    if (name === "" || name.startsWith("#")) break;
    result[name] = String(row.data_type);
  }
  return result;
}

async function statuses(w: TestWorld, ingestionId: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let afterId: number | undefined;
  for (;;) {
    const page = await listFiles(w.db, ingestionId, { limit: 1_000, ...(afterId ? { afterId } : {}) });
    for (const file of page) counts[file.status] = (counts[file.status] ?? 0) + 1;
    if (page.length < 1_000) return counts;
    afterId = page[page.length - 1]!.id;
  }
}

/** Waits until no file of the ingestion is PENDING or PROCESSING (files queued outside a run). */
async function settled(w: TestWorld, ingestionId: number, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await statuses(w, ingestionId);
    if ((counts.PENDING ?? 0) + (counts.PROCESSING ?? 0) === 0) return;
    if (Date.now() > deadline) throw new Error(`files still open: ${JSON.stringify(counts)}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

describe("schemaEvolution", () => {
  it("addNewColumns (the default without a schema): the seed's 500 + 500 files land, the new column added in the same batch", async () => {
    const w = (world = await createWorld());
    await landing(w, "a", FILES, (i) => ({ id: i, v: `a-${i}` }));
    const ingestion = await w.ingestion({ schema: undefined });
    expect(ingestion.schemaEvolution).toBeNull();
    await w.worker();
    await ingestAll(w, ingestion.name);
    await landing(w, "b", FILES, (i) => ({ id: FILES + i, v: `b-${i}`, score: i + 0.5 }));
    // A file without a column the table has: that column is null in its rows.
    await w.file("c-only-v.json", JSON.stringify({ v: "no id" }) + "\n");
    await ingestAll(w, ingestion.name);

    expect(await statuses(w, ingestion.id)).toEqual({ SUCCESS: 2 * FILES + 1 });
    expect(await columns(w, w.table())).toMatchObject({ id: "bigint", v: "string", score: "double" });
    const [totals] = await w.spark.sql(
      `SELECT count(*) AS n, count(score) AS scored, count(id) AS with_id, max(score) AS top FROM ${w.table()}`,
    );
    expect([totals?.n, totals?.scored, totals?.with_id, totals?.top].map(Number)).toEqual([
      2 * FILES + 1,
      FILES,
      2 * FILES,
      FILES - 0.5,
    ]);
  }, 600_000);

  it("addNewColumns with CSV: files whose headers order the columns differently, then add one, land each value in its column", async () => {
    const w = (world = await createWorld());
    // Layouts interleaved, so that every group commit holds both: Spark alone reads them by position, and a
    // swap of columns of the same count would land without an error.
    const half = 30;
    const land = (prefix: string, layouts: ((i: number) => string)[]): Promise<unknown> =>
      Promise.all(
        Array.from({ length: half }, (_, i) =>
          w.file(`${prefix}-${String(i).padStart(4, "0")}.csv`, layouts[i % 2]!(i)),
        ),
      );
    await land("a", [(i) => `id,v\n${i},v-${i}\n`, (i) => `v,id\nv-${i},${i}\n`]);
    const ingestion = await w.ingestion({
      schema: undefined,
      format: "csv",
      pattern: "**/*.csv",
      options: { header: "true", inferSchema: "true" },
    });
    await w.worker();
    await ingestAll(w, ingestion.name);
    const added = (i: number): number => half + i;
    await land("b", [
      (i) => `id,score,v\n${added(i)},${added(i) + 0.5},v-${added(i)}\n`,
      (i) => `score,v,id\n${added(i) + 0.5},v-${added(i)},${added(i)}\n`,
    ]);
    await ingestAll(w, ingestion.name);

    expect(await statuses(w, ingestion.id)).toEqual({ SUCCESS: 2 * half });
    expect(await columns(w, w.table())).toMatchObject({ id: "int", v: "string", score: "double" });
    const [check] = await w.spark.sql(
      `SELECT count(*) AS n, count_if(v = concat('v-', id)) AS in_place, count(score) AS scored,
              count_if(score = id + 0.5) AS scores_in_place FROM ${w.table()}`,
    );
    expect([check?.n, check?.in_place, check?.scored, check?.scores_in_place].map(Number)).toEqual([
      2 * half,
      2 * half,
      half,
      half,
    ]);
  }, 300_000);

  it("none: the table's columns never change; a new column is left out, the rows land", async () => {
    const w = (world = await createWorld());
    await landing(w, "a", FILES, (i) => ({ id: i, v: `a-${i}` }));
    const ingestion = await w.ingestion({ schema: undefined, schemaEvolution: "none" });
    await w.worker();
    await ingestAll(w, ingestion.name);
    await landing(w, "b", FILES, (i) => ({ id: FILES + i, v: `b-${i}`, score: i + 0.5 }));
    await ingestAll(w, ingestion.name);

    expect(await statuses(w, ingestion.id)).toEqual({ SUCCESS: 2 * FILES });
    expect(Object.keys(await columns(w, w.table())).sort()).toEqual([
      "_ingested_at",
      "_source_file",
      "id",
      "v",
    ]);
    const [totals] = await w.spark.sql(`SELECT count(*) AS n FROM ${w.table()}`);
    expect(Number(totals?.n)).toBe(2 * FILES);
  }, 600_000);

  it("widens a declared int to bigint and adds a declared column when the schema grows; refuses a type Iceberg cannot change", async () => {
    const w = (world = await createWorld());
    await w.file("a.json", JSON.stringify({ id: 1, v: "a" }) + "\n");
    const spec = { schemaEvolution: "addNewColumns" };
    const ingestion = await w.ingestion({ ...spec, schema: "id INT, v STRING" });
    // A worker reads an edited ingestion within its cache's 5 s: each phase gets a fresh one instead.
    let worker = await w.worker();
    await ingestAll(w, ingestion.name);
    expect(await columns(w, w.table())).toMatchObject({ id: "int", v: "string" });

    await worker.close();
    await w.ingestion({ ...spec, schema: "id BIGINT, v STRING, score DOUBLE" });
    worker = await w.worker();
    await w.file("b.json", JSON.stringify({ id: 3_000_000_000, v: "b", score: 1.5 }) + "\n");
    await ingestAll(w, ingestion.name);
    expect(await columns(w, w.table())).toMatchObject({ id: "bigint", v: "string", score: "double" });

    // Inferred from here on: a string where the table has bigint fails that file alone, saying why.
    await worker.close();
    await w.ingestion({ ...spec, schema: undefined });
    await w.worker();
    await w.file("c-text-id.json", JSON.stringify({ id: "x-1", v: "c" }) + "\n");
    await w.file("d.json", JSON.stringify({ id: 4, v: "d" }) + "\n");
    // A number where the table has a string is cast, as Spark's own write would.
    await w.file("e-number-v.json", JSON.stringify({ id: 5, v: 42 }) + "\n");
    await ingestAll(w, ingestion.name);
    const files = await listFiles(w.db, ingestion.id);
    const failed = files.filter((file) => file.status === "FAILED");
    expect(failed.map((file) => file.filePath.split("/").pop())).toEqual(["c-text-id.json"]);
    expect(failed[0]).toMatchObject({ errorType: "SCHEMA_MISMATCH" });
    expect(failed[0]?.errorMessage).toMatch(
      /^column id is long in `lake`.*and string in the file: Iceberg widens/,
    );
    expect(files.filter((file) => file.status === "SUCCESS")).toHaveLength(4);
    const [five] = await w.spark.sql(`SELECT v FROM ${w.table()} WHERE id = 5`);
    expect(five?.v).toBe("42");
  }, 600_000);

  it("rescue: the seed's 500 + 500 files land; the table keeps its columns, the new column and a misfit value go to _rescued_data with their file", async () => {
    const w = (world = await createWorld());
    await landing(w, "a", FILES, (i) => ({ id: i, v: `a-${i}` }));
    const ingestion = await w.ingestion({ schema: undefined, schemaEvolution: "rescue" });
    await w.worker();
    await ingestAll(w, ingestion.name);
    expect(await columns(w, w.table())).toMatchObject({ id: "bigint", v: "string", _rescued_data: "string" });

    await landing(w, "b", FILES, (i) => ({ id: FILES + i, v: `b-${i}`, score: i + 0.5 }));
    // A value that does not fit its column: the row lands, id null, the value kept.
    const misfit = await w.file("c-text-id.json", JSON.stringify({ id: "x-1", v: "c" }) + "\n");
    await ingestAll(w, ingestion.name);

    expect(await statuses(w, ingestion.id)).toEqual({ SUCCESS: 2 * FILES + 1 });
    expect(Object.keys(await columns(w, w.table())).sort()).toEqual([
      "_ingested_at",
      "_rescued_data",
      "_source_file",
      "id",
      "v",
    ]);
    const [totals] = await w.spark.sql(
      `SELECT count(*) AS n, count(_rescued_data) AS rescued, count(id) AS with_id FROM ${w.table()}`,
    );
    expect([totals?.n, totals?.rescued, totals?.with_id].map(Number)).toEqual([
      2 * FILES + 1,
      FILES + 1,
      2 * FILES,
    ]);
    const [b7] = await w.spark.sql(
      `SELECT id, _rescued_data AS r, _source_file AS f FROM ${w.table()} WHERE v = 'b-7'`,
    );
    expect(Number(b7?.id)).toBe(FILES + 7);
    expect(JSON.parse(String(b7?.r))).toEqual({ score: 7.5, _file: b7?.f });
    const [c] = await w.spark.sql(`SELECT id, _rescued_data AS r FROM ${w.table()} WHERE v = 'c'`);
    expect(c?.id).toBeNull();
    expect(JSON.parse(String(c?.r))).toEqual({ id: "x-1", _file: misfit });
  }, 600_000);

  it("failOnNewColumns: files with a new column are SKIPPED with the diff recorded; approval adds the column and ingests exactly them", async () => {
    const w = (world = await createWorld());
    await landing(w, "a", FILES, (i) => ({ id: i, v: `a-${i}` }));
    const ingestion = await w.ingestion({ schema: undefined, schemaEvolution: "failOnNewColumns" });
    await w.worker();
    await ingestAll(w, ingestion.name);

    await landing(w, "b", FILES, (i) => ({ id: FILES + i, v: `b-${i}`, score: i + 0.5 }));
    // Files of schema A in the same pass land; only the files with the new column wait.
    await landing(w, "c", 5, (i) => ({ id: 2 * FILES + i, v: `c-${i}` }));
    await ingestAll(w, ingestion.name);

    expect(await statuses(w, ingestion.id)).toEqual({ SUCCESS: FILES + 5, SKIPPED: FILES });
    const skipped = (await listFiles(w.db, ingestion.id, { status: "SKIPPED", limit: 1 }))[0];
    expect(skipped).toMatchObject({ errorType: "SCHEMA_CHANGE_PENDING" });
    expect(skipped?.errorMessage).toMatch(
      /^new column\(s\) not in `lake`.*: score double; the file waits for approval/,
    );
    expect(Object.keys(await columns(w, w.table()))).not.toContain("score");
    const [pending] = await listSchemaChanges(w.db, ingestion.id);
    expect(pending).toMatchObject({ column: "score", type: "double", files: FILES, approvedAt: null });

    const approval = await approveSchemaChanges(
      { db: w.db, spark: w.spark, ingestQueue: w.queue },
      ingestion,
    );
    expect(approval).toEqual({
      approved: [{ column: "score", type: "double" }],
      added: ["score"],
      requeued: FILES,
    });
    await settled(w, ingestion.id);

    expect(await statuses(w, ingestion.id)).toEqual({ SUCCESS: 2 * FILES + 5 });
    expect(await columns(w, w.table())).toMatchObject({ score: "double" });
    const [totals] = await w.spark.sql(
      `SELECT count(*) AS n, count(score) AS scored, max(score) AS top FROM ${w.table()}`,
    );
    expect([totals?.n, totals?.scored, totals?.top].map(Number)).toEqual([2 * FILES + 5, FILES, FILES - 0.5]);
    expect(await listSchemaChanges(w.db, ingestion.id, { pendingOnly: true })).toEqual([]);
  }, 600_000);

  it("schemaHints type inferred columns and add a hinted column no file has", async () => {
    const w = (world = await createWorld());
    await w.file("a.json", JSON.stringify({ id: 1, amount: 12.25, v: "a" }) + "\n");
    const ingestion = await w.ingestion({
      schema: undefined,
      schemaHints: "id INT, amount DECIMAL(10,2), `note` STRING",
    });
    await w.worker();
    await ingestAll(w, ingestion.name);
    expect(await statuses(w, ingestion.id)).toEqual({ SUCCESS: 1 });
    expect(await columns(w, w.table())).toMatchObject({
      id: "int",
      amount: "decimal(10,2)",
      v: "string",
      note: "string",
    });
    const [row] = await w.spark.sql(`SELECT CAST(amount AS STRING) AS amount, note FROM ${w.table()}`);
    expect(row).toEqual({ amount: "12.25", note: null });
  }, 300_000);
});
