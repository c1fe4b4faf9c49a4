import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { formatMicros, parseMicros } from "../src/ingested-at.ts";
import {
  parseTableName,
  sourceFileKey,
  validateWriteBatch,
  verbatimSparkPath,
  type WriteBatch,
} from "../src/index.ts";

const batch = (overrides: Partial<WriteBatch>): WriteBatch => ({
  batchId: "0b6f3c2e-8f1d-4a57-9a43-2f0f6f7d8e11",
  table: "lake.ns.events",
  format: "json",
  files: ["file:///tmp/a.json"],
  ...overrides,
});

describe("validateWriteBatch", () => {
  it("applies defaults: append, and FAILFAST for json/csv unless a mode is given", () => {
    const valid = validateWriteBatch(batch({}));
    expect(valid.mode).toBe("append");
    expect(valid.options).toEqual({ mode: "FAILFAST" });
    expect(validateWriteBatch(batch({ options: { MODE: "PERMISSIVE" } })).options).toEqual({
      MODE: "PERMISSIVE",
    });
    expect(validateWriteBatch(batch({ format: "parquet" })).options).toEqual({});
    expect(validateWriteBatch(batch({})).tableName.quoted).toBe("`lake`.`ns`.`events`");
  });

  it.each([
    ["table", batch({ table: "lake.ns" })],
    ["table", batch({ table: "lake.ns.t;drop" })],
    ["table", batch({ table: "lake.ns.`t`" })],
    ["table", batch({ table: "lake.1ns.t" })],
    ["batchId", batch({ batchId: "" })],
    ["batchId", batch({ batchId: "x'; --" })],
    ["format", batch({ format: "xml" as WriteBatch["format"] })],
    ["mode", batch({ mode: "upsert" as WriteBatch["mode"] })],
    ["options.bad key", batch({ options: { "bad key": "x" } })],
    ["options.path", batch({ options: { path: "/etc" } })],
    ["files", batch({ files: [] })],
    ["files[0]", batch({ files: ["file:///tmp/dir/"] })],
    ["files[0]", batch({ files: ["file:///tmp/../etc/passwd"] })],
    ["files[0]", batch({ files: ["file:///tmp/a\nb.json"] })],
    ["schema", batch({ schema: " " })],
  ])("refuses a bad %s", (field, input) => {
    let caught: unknown;
    try {
      validateWriteBatch(input);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidInputError);
    expect((caught as InvalidInputError).field).toBe(field);
    expect((caught as InvalidInputError).retryable).toBe(false);
  });
});

describe("parseTableName", () => {
  it("splits and quotes the three parts", () => {
    expect(parseTableName("lake.sales_2024.Orders")).toEqual({
      catalog: "lake",
      namespace: "sales_2024",
      table: "Orders",
      quoted: "`lake`.`sales_2024`.`Orders`",
    });
  });
});

describe("sourceFileKey", () => {
  it("matches the form Spark's _metadata.file_path takes once decoded", () => {
    expect(sourceFileKey("file:///tmp/x y+z.json")).toBe("file:/tmp/x y+z.json");
    expect(sourceFileKey("/tmp//x.json")).toBe("file:/tmp/x.json");
    expect(sourceFileKey("s3a://bucket/in//a.json")).toBe("s3a:/bucket/in/a.json");
  });
});

describe("verbatimSparkPath", () => {
  it("predicts the path Spark prints for paths it does not encode, and nothing for the others", () => {
    expect(verbatimSparkPath("file:///tmp/in//a-1_b.json")).toBe("file:/tmp/in/a-1_b.json");
    expect(verbatimSparkPath("/tmp/a+b.json")).toBe("file:/tmp/a+b.json");
    expect(verbatimSparkPath("s3a://bucket/in//a.json")).toBe("s3a://bucket/in/a.json");
    expect(verbatimSparkPath("file:///tmp/x y.json")).toBeUndefined();
    expect(verbatimSparkPath("file:///tmp/a%20b.json")).toBeUndefined();
    expect(verbatimSparkPath("file:///tmp/é.json")).toBeUndefined();
    expect(verbatimSparkPath("file:///tmp/[1].json")).toBeUndefined();
  });
});

describe("ingestion instant", () => {
  it("round-trips microseconds through the ISO form in the snapshot summary", () => {
    const micros = 1_735_787_045_123_456n;
    expect(formatMicros(micros)).toBe("2025-01-02T03:04:05.123456Z");
    expect(parseMicros(formatMicros(micros))).toBe(micros);
    expect(parseMicros("2025-01-02T03:04:05.123Z")).toBeUndefined();
  });
});
