/**
 * CSV batches whose files name their columns in different orders (or have different columns) are read by
 * each file's own header, in one write (real Spark).
 */
import { randomUUID } from "node:crypto";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { ddlColumns, headerOrderedSchema, plainHeaderNames, widerCsvType } from "../src/batch-reader.ts";
import { RefusedFilesError, SchemaChangeError, type WriteBatch } from "../src/index.ts";
import { file, newTable, spark, useSpark, writer } from "./helpers.ts";

useSpark("csv-headers");

const csvBatch = (table: string, files: string[], extra: Partial<WriteBatch> = {}): WriteBatch => ({
  batchId: randomUUID(),
  table,
  format: "csv",
  options: { header: "true", inferSchema: "true" },
  files,
  ...extra,
});

/** The table's rows as `{column: value}` with `_source_file` shortened to the file's name, sorted by id. */
async function rowsOf(table: string, columns: string[]): Promise<Record<string, unknown>[]> {
  const rows = await spark.sql(
    `SELECT ${columns.join(", ")}, regexp_extract(_source_file, '[^/]+$', 0) AS file FROM ${table} ORDER BY id`,
  );
  return rows.map((row) => Object.fromEntries(Object.entries(row).map(([key, value]) => [key, norm(value)])));
}

const norm = (value: unknown): unknown => (typeof value === "bigint" ? Number(value) : value);

describe("CSV batches read by each file's header", () => {
  it("inferred columns: files in different orders (one gzip, one with a comment line) keep every value in its column", async () => {
    const table = newTable();
    const a = await file("order/a.csv", "id,name,price\n1,ada,1.5\n2,bob,2.5\n");
    const b = await file("order/b.csv", "id,price,name\n3,3.5,cy\n");
    const c = await file("order/c.csv.gz", gzipSync("name,id,price\ndi,4,4.5\n"));
    const d = await file("order/d.csv", "# exported 2026-12-01\nid,name,price\n5,ed,5.5\n");
    const options = { header: "true", inferSchema: "true", comment: "#" };
    const result = await writer.write(csvBatch(table, [a, b, c, d], { options }));
    expect(Object.fromEntries(result.records)).toEqual({ [a]: 2, [b]: 1, [c]: 1, [d]: 1 });
    expect(await rowsOf(table, ["id", "name", "price"])).toEqual([
      { id: 1, name: "ada", price: 1.5, file: "a.csv" },
      { id: 2, name: "bob", price: 2.5, file: "a.csv" },
      { id: 3, name: "cy", price: 3.5, file: "b.csv" },
      { id: 4, name: "di", price: 4.5, file: "c.csv.gz" },
      { id: 5, name: "ed", price: 5.5, file: "d.csv" },
    ]);
  });

  it("addNewColumns: a column later files add joins the table, filled for them and null for the others", async () => {
    const table = newTable();
    const old = await file("evolve/old.csv", "id,name\n1,ada\n");
    const added = await file("evolve/new.csv", "id,score,name\n2,7,bob\n");
    await writer.write(csvBatch(table, [old, added], { schemaEvolution: "addNewColumns" }));
    expect(await rowsOf(table, ["id", "name", "score"])).toEqual([
      { id: 1, name: "ada", score: null, file: "old.csv" },
      { id: 2, name: "bob", score: 7, file: "new.csv" },
    ]);
    // An existing table, a batch of a file that lacks a column and one with a second new one.
    const later = await file("evolve/later.csv", "name,id\ncy,3\n");
    const more = await file("evolve/more.csv", "tag,name,score,id\nx,di,9,4\n");
    await writer.write(csvBatch(table, [later, more], { schemaEvolution: "addNewColumns" }));
    expect(await rowsOf(table, ["id", "name", "score", "tag"])).toEqual([
      { id: 1, name: "ada", score: null, tag: null, file: "old.csv" },
      { id: 2, name: "bob", score: 7, tag: null, file: "new.csv" },
      { id: 3, name: "cy", score: null, tag: null, file: "later.csv" },
      { id: 4, name: "di", score: 9, tag: "x", file: "more.csv" },
    ]);
  });

  it("a declared schema maps each header by name; a bad value is rejected at its record number", async () => {
    const table = newTable();
    const schema = "id BIGINT, name STRING, price DOUBLE";
    const same = await file("declared/same.csv", "id,name,price\n1,ada,1.5\n");
    const swapped = await file("declared/swapped.csv", "price;id;name\n2.5;2;bob\nx;3;cy\n3.5;4;di\n");
    const fewer = await file("declared/fewer.csv", 'name;"id"\ned;5\n');
    const semicolon = { header: "true", sep: ";" };
    const comma = await writer.write(csvBatch(table, [same], { schema }));
    expect(comma.records.get(same)).toBe(1);
    const result = await writer.write(
      csvBatch(table, [swapped, fewer], { schema, options: semicolon, badRecords: { onError: "continue" } }),
    );
    expect(Object.fromEntries(result.records)).toEqual({ [swapped]: 2, [fewer]: 1 });
    expect(await rowsOf(table, ["id", "name", "price"])).toEqual([
      { id: 1, name: "ada", price: 1.5, file: "same.csv" },
      { id: 2, name: "bob", price: 2.5, file: "swapped.csv" },
      { id: 4, name: "di", price: 3.5, file: "swapped.csv" },
      { id: 5, name: "ed", price: null, file: "fewer.csv" },
    ]);
    const rejected = await spark.sql(`SELECT record_number, raw_record FROM ${table}__rejected`);
    expect(rejected.map((row) => [norm(row.record_number), row.raw_record])).toEqual([[2, "x;3;cy"]]);
  });

  it("failOnNewColumns refuses only the file that brings a column; rescue keeps it, whatever the order", async () => {
    const strict = newTable();
    const first = await file("strict/first.csv", "id,name\n1,ada\n");
    await writer.write(csvBatch(strict, [first], { schemaEvolution: "failOnNewColumns" }));
    const reordered = await file("strict/reordered.csv", "name,id\nbob,2\n");
    const extra = await file("strict/extra.csv", "id,extra,name\n3,x,cy\n");
    const error = await writer
      .write(csvBatch(strict, [reordered, extra], { schemaEvolution: "failOnNewColumns" }))
      .then(
        () => undefined,
        (caught: unknown) => caught,
      );
    expect(error).toBeInstanceOf(SchemaChangeError);
    expect([...(error as SchemaChangeError).refused.keys()]).toEqual([extra]);
    await writer.write(csvBatch(strict, [reordered], { schemaEvolution: "failOnNewColumns" }));
    expect(await rowsOf(strict, ["id", "name"])).toEqual([
      { id: 1, name: "ada", file: "first.csv" },
      { id: 2, name: "bob", file: "reordered.csv" },
    ]);

    const rescued = newTable();
    await writer.write(csvBatch(rescued, [first], { schemaEvolution: "rescue" }));
    await writer.write(csvBatch(rescued, [reordered, extra], { schemaEvolution: "rescue" }));
    const rows = await rowsOf(rescued, ["id", "name", "_rescued_data"]);
    expect(rows.map((row) => [row.id, row.name])).toEqual([
      [1, "ada"],
      [2, "bob"],
      [3, "cy"],
    ]);
    expect(rows[1]?._rescued_data).toBeNull();
    expect(JSON.parse(String(rows[2]?._rescued_data))).toEqual({ extra: "x", _file: extra });
  });
});

describe("CSV headers that only look alike (a maintainer review's cases)", () => {
  it("spaced names, a header column named like lakeferry's, types inferred apart, a file without a header", async () => {
    const table = newTable();
    const schema = "id BIGINT, name STRING, price DOUBLE";
    // Spark keeps ` name`: it is `name`, not a column the schema lacks (which would leave name null).
    const spaced = await file("alike/spaced.csv", "id, price, name\n1, 1.5,ada\n");
    // A file exported from a table: its `_source_file` column must not replace the file's own.
    const exported = await file(
      "alike/exported.csv",
      "name,_source_file,id,price\nbob,s3://old/x.csv,2,2.5\n",
    );
    await writer.write(csvBatch(table, [spaced, exported], { schema, options: { header: "true" } }));
    const rows = await rowsOf(table, ["id", "name", "price"]);
    expect(rows.map((row) => [row.id, String(row.name).trim(), row.price, row.file])).toEqual([
      [1, "ada", 1.5, "spaced.csv"],
      [2, "bob", 2.5, "exported.csv"],
    ]);

    // Inferred apart, `zip` is an int in one group and a string in the other: one read of both would infer
    // a string, and "02134" must stay "02134" (a union would cast it through 2134).
    const typed = newTable();
    const numbers = await file("alike/numbers.csv", "id,zip\n1,2134\n");
    const codes = await file("alike/codes.csv", "zip,id\n02134,2\nK1A 0B1,3\n");
    await writer.write(csvBatch(typed, [numbers, codes]));
    expect((await rowsOf(typed, ["id", "zip"])).map((row) => [row.id, row.zip])).toEqual([
      [1, "2134"],
      [2, "02134"],
      [3, "K1A 0B1"],
    ]);

    // A file whose first line is data, under `header`: refused, not made into columns `3`, `cy`.
    const headless = await file("alike/headless.csv", "3,cy\n4,di\n");
    const named = await file("alike/named.csv", "id,name\n1,ada\n");
    const also = await file("alike/also.csv", "name,id\nbob,2\n");
    const error = await writer.write(csvBatch(newTable(), [named, headless, also])).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(RefusedFilesError);
    expect([...(error as RefusedFilesError).refused.keys()]).toEqual([headless]);
    expect((error as RefusedFilesError).code).toBe("SCHEMA_MISMATCH");
  });
});

describe("header-ordered schema (no Spark)", () => {
  const declared = ddlColumns(
    "id BIGINT, `the name` STRING, price DECIMAL(10, 2), _lakeferry_corrupt_record STRING",
  );

  it("puts the declared definitions in the header's order, unnamed header columns as STRING, corrupt last", () => {
    expect(headerOrderedSchema(declared, ["PRICE", "extra", "id"])).toEqual({
      schema: "price DECIMAL(10, 2), `extra` STRING, id BIGINT, _lakeferry_corrupt_record STRING",
      unnamed: ["extra"],
      asDeclared: false,
    });
    // The declared order (a byte order mark before the first name ignored) is read with the schema as is.
    expect(headerOrderedSchema(declared, ["\uFEFFid", "The Name", "price"])?.asDeclared).toBe(true);
    expect(headerOrderedSchema(declared, ["id", "price"])?.asDeclared).toBe(false);
    // A header naming none of the declared columns is read by position.
    expect(headerOrderedSchema(declared, ["a", "b"])).toBeUndefined();
    // Spaces around a name (Spark keeps them) do not hide it.
    expect(headerOrderedSchema(declared, [" price", " id"])?.unnamed).toEqual([]);
    // Names Spark made up (an empty name, a repeated one) with as many names as columns: by position.
    expect(headerOrderedSchema(declared, ["id", "_c1", "price"])).toBeUndefined();
    expect(headerOrderedSchema(declared, ["id0", "the name", "ID2"])).toBeUndefined();
    // A real column the schema lacks beside a missing one: by name (price null, color left out).
    expect(headerOrderedSchema(declared, ["id", "color", "the name"])?.unnamed).toEqual(["color"]);
  });

  it("merges types inferred apart as one CSV read would", () => {
    expect(widerCsvType("int", "bigint")).toBe("bigint");
    expect(widerCsvType("int", "double")).toBe("double");
    expect(widerCsvType("int", "decimal(5,2)")).toBe("decimal(12,2)");
    expect(widerCsvType("decimal(5,2)", "decimal(10,0)")).toBe("decimal(12,2)");
    expect(widerCsvType("decimal(38,0)", "decimal(10,5)")).toBe("double");
    expect(widerCsvType("date", "timestamp")).toBe("timestamp");
    expect(widerCsvType("int", "string")).toBe("string");
    expect(widerCsvType("boolean", "int")).toBe("string");
  });

  it("takes a plain header's names itself and leaves any other to Spark", () => {
    expect(plainHeaderNames("id,the name", {})).toEqual(["id", "the name"]);
    expect(plainHeaderNames("id|name", { delimiter: "|" })).toEqual(["id", "name"]);
    expect(plainHeaderNames('"id",name', {})).toBeUndefined();
    expect(plainHeaderNames("id,,name", {})).toBeUndefined();
    expect(plainHeaderNames("id,ID", {})).toBeUndefined();
    expect(plainHeaderNames("id,name", { encoding: "UTF-16" })).toBeUndefined();
  });
});
