/** How a batch's inferred columns compare with its table's, and how schema hints apply (no Spark). */
import { describe, expect, it } from "vitest";
import { compareColumns, withHints } from "../src/schema-evolution.ts";
import { parseSchemaHints } from "../src/write-batch.ts";

const field = (name: string, type: string) => ({ name, type, nullable: true });

describe("compareColumns (failOnNewColumns)", () => {
  const table = [field("id", "bigint"), field("v", "string"), field("at", "struct<`day`:string>")];

  it("names the columns the table lacks; a primitive type difference is left to the read", () => {
    expect(
      compareColumns([field("id", "string"), field("v", "string"), field("score", "double")], table),
    ).toEqual({
      added: [field("score", "double")],
      mismatch: undefined,
    });
  });

  it("refuses a name that differs only in case (its values would read as null) and a changed nested type", () => {
    expect(compareColumns([field("ID", "bigint")], table).mismatch).toEqual({
      column: "ID",
      fileType: "bigint",
      tableColumn: "id",
      tableType: "bigint",
    });
    expect(compareColumns([field("at", "struct<`day`:string,`hour`:bigint>")], table).mismatch).toMatchObject(
      {
        column: "at",
        tableColumn: "at",
      },
    );
    expect(compareColumns([field("at", "struct<day:string>")], table).mismatch).toBeUndefined();
  });
});

describe("schema hints", () => {
  it("types inferred columns, adds hinted ones no file has, and matches names without regard to case", () => {
    const hints = parseSchemaHints("ID INT, `price` DECIMAL(10, 2), tags ARRAY<STRING>, note STRING");
    expect(hints).toEqual([
      { name: "ID", type: "int" },
      { name: "price", type: "decimal(10, 2)" },
      { name: "tags", type: "array<string>" },
      { name: "note", type: "string" },
    ]);
    expect(
      withHints([field("id", "bigint"), field("price", "double"), field("tags", "array<string>")], hints),
    ).toEqual([
      field("id", "int"),
      field("price", "decimal(10, 2)"),
      field("tags", "array<string>"),
      field("note", "string"),
    ]);
  });

  it("refuses what is not `name TYPE`", () => {
    expect(() => parseSchemaHints("a.b INT")).toThrow(/"a.b INT" is not `name TYPE`/);
    expect(() => parseSchemaHints("id INT;DROP")).toThrow(/is not `name TYPE`/);
    expect(() => parseSchemaHints("")).toThrow(/must be a non-empty list/);
  });
});
