/**
 * `schemaEvolution` with real Spark and Iceberg: the seed's scenario (files of schema A, then files with a
 * new column) under `addNewColumns` and `none`, type widening, and a type Iceberg cannot change.
 */
import { listFiles } from "@lakeferry/db";
import { afterEach, describe, expect, it } from "vitest";
import { discoverFiles, waitForRun } from "../src/index.ts";
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
    await ingestAll(w, ingestion.name);
    const files = await listFiles(w.db, ingestion.id);
    const failed = files.filter((file) => file.status === "FAILED");
    expect(failed.map((file) => file.filePath.split("/").pop())).toEqual(["c-text-id.json"]);
    expect(failed[0]).toMatchObject({ errorType: "SCHEMA_MISMATCH" });
    expect(failed[0]?.errorMessage).toMatch(
      /^column id is long in `lake`.*and string in the file: Iceberg widens/,
    );
    expect(files.filter((file) => file.status === "SUCCESS")).toHaveLength(3);
  }, 600_000);
});
