import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { parseIngestionFile, parseIngestionSpec } from "../src/index.ts";

const valid = {
  name: "orders",
  source: "file:///data/landing/orders/",
  format: "json",
  table: "lake.sales.orders",
};

/** The InvalidInputError a call throws (fails the test when it does not throw one). */
function refusal(call: () => unknown): InvalidInputError {
  try {
    call();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidInputError);
    return err as InvalidInputError;
  }
  throw new Error("expected an InvalidInputError");
}

describe("parseIngestionSpec", () => {
  it("fills defaults and maps the spec onto the stored ingestion", () => {
    expect(parseIngestionSpec(valid)).toEqual({
      name: "orders",
      sourceUri: "file:///data/landing/orders/",
      format: "json",
      readerOptions: {},
      schemaDdl: null,
      schemaEvolution: null,
      schemaHints: null,
      rescuedDataColumn: null,
      glob: null,
      targetTable: "lake.sales.orders",
      schedule: null,
      maxAttempts: 5,
      backoffMs: 1000,
      modifiedPolicy: "ignore",
      listing: { mode: "full", includeHidden: false, minAgeMs: 5000 },
      // Its defaults are proven in table-maintenance-settings.test.ts.
      maintenance: expect.any(Object) as unknown,
      cleanSource: null,
      maxFileBytes: null,
      largeFileBytes: null,
      // abortFile: bad-records.test.ts proves the other modes.
      badRecords: null,
      enabled: true,
    });
  });

  it("keeps every field given, turns YAML scalars in options into strings, lists clouds incrementally", () => {
    const input = parseIngestionSpec({
      ...valid,
      source: "s3://landing/orders/",
      options: { header: true, samplingRatio: 0.5, sep: ";" },
      schema: "id BIGINT, amount DOUBLE",
      pattern: "**/*.json",
      schedule: "*/5 * * * *",
      retry: { attempts: 3 },
      modified: "replace",
      listing: { partitions: { template: "{yyyy}/{MM}/{dd}/", lookbackDays: 3 } },
      spark: { pathRules: [{ from: "s3", to: "s3a" }] },
      enabled: false,
    });
    expect(input).toMatchObject({
      readerOptions: { header: "true", samplingRatio: "0.5", sep: ";" },
      schemaDdl: "id BIGINT, amount DOUBLE",
      glob: "**/*.json",
      schedule: "*/5 * * * *",
      maxAttempts: 3,
      backoffMs: 1000,
      modifiedPolicy: "replace",
      enabled: false,
      listing: {
        mode: "incremental",
        partitions: { template: "{yyyy}/{MM}/{dd}/", lookbackDays: 3 },
        sparkPathRules: [{ from: "s3", to: "s3a" }],
      },
    });
  });

  it.each([
    [{ ...valid, name: "Orders!" }, "name", /lowercase/],
    [{ ...valid, name: undefined }, "name", /required/],
    [{ ...valid, source: "ftp://host/x" }, "source", /unsupported scheme/],
    [{ ...valid, source: "file://relative" }, "source", /file URIs/],
    [{ ...valid, format: "xml" }, "format", /json/],
    [{ ...valid, table: "orders" }, "table", /catalog\.namespace\.table/],
    [{ ...valid, table: "lake.sales.bad-name" }, "table", /catalog\.namespace\.table/],
    [{ ...valid, schedule: "every 5 minutes" }, "schedule", /cron/],
    [{ ...valid, schedule: "61 * * * *" }, "schedule", /not a valid cron expression/],
    [{ ...valid, schedule: "* * * *" }, "schedule", /has 4 fields/],
    [{ ...valid, retry: { attempts: 0 } }, "retry.attempts", /at least 1/],
    [{ ...valid, modified: "overwrite" }, "modified", /ignore/],
    [
      { ...valid, schemaEvolution: "merge" },
      "schemaEvolution",
      /must be addNewColumns, rescue, failOnNewColumns, none/,
    ],
    [{ ...valid, schemaHints: "id" }, "schemaHints", /"id" is not `name TYPE` with a Spark type/],
    [{ ...valid, schemaHints: "id BIGNUM" }, "schemaHints", /"id BIGNUM" is not `name TYPE`/],
    [{ ...valid, schemaHints: "id INT, ID STRING" }, "schemaHints", /column ID is hinted twice/],
    [
      { ...valid, schema: "id INT", schemaHints: "id BIGINT" },
      "schemaHints",
      /with a declared schema, put the types in `schema` instead/,
    ],
    [
      { ...valid, schema: "id INT", schemaEvolution: "rescue" },
      "schemaEvolution",
      /rescue compares the files' inferred columns with the table's; leave `schema` out/,
    ],
    [
      { ...valid, schemaEvolution: "failOnNewColumns", options: { samplingRatio: "0.1" } },
      "options.samplingRatio",
      /a sampled inference would miss some/,
    ],
    [
      { ...valid, rescuedDataColumn: "_extra" },
      "rescuedDataColumn",
      /names the column `schemaEvolution: rescue` fills/,
    ],
    [
      { ...valid, schemaEvolution: "rescue", rescuedDataColumn: "bad name" },
      "rescuedDataColumn",
      /must match \[A-Za-z_\]/,
    ],
    [{ ...valid, options: { "bad key": "x" } }, "options.bad key", /option names/],
    [{ ...valid, pattern: "[unclosed" }, "pattern", /glob/],
    [{ ...valid, patern: "*.json" }, "ingestion", /unknown key "patern"/],
  ])("refuses %j naming the field", (input, field, message) => {
    const error = refusal(() => parseIngestionSpec(input));
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
  });

  it("names every wrong field when several are wrong", () => {
    const error = refusal(() => parseIngestionSpec({ ...valid, format: "xml", table: "t" }));
    expect(error.message).toMatch(/format: .*; also table: /);
  });
});

describe("parseIngestionFile", () => {
  it("reads one or several YAML documents", () => {
    const one = parseIngestionFile(`
name: orders
source: file:///data/landing/orders/
format: csv
options: { header: "true" }
schema: "id BIGINT, amount DOUBLE"
pattern: "**/*.csv"
table: lake.sales.orders
schedule: "*/5 * * * *"
retry: { attempts: 5, backoffMs: 2000 }
`);
    expect(one).toHaveLength(1);
    expect(one[0]).toMatchObject({ name: "orders", readerOptions: { header: "true" }, backoffMs: 2000 });

    const two = parseIngestionFile(
      `name: a\nsource: file:///a/\nformat: json\ntable: lake.x.a\n---\nname: b\nsource: file:///b/\nformat: parquet\ntable: lake.x.b\n---\n`,
    );
    expect(two.map((input) => input.name)).toEqual(["a", "b"]);
  });

  it("points at the document and field that are wrong", () => {
    const error = refusal(() =>
      parseIngestionFile(
        `name: a\nsource: file:///a/\nformat: json\ntable: lake.x.a\n---\nname: b\nsource: file:///b/\nformat: json\ntable: nope\n`,
      ),
    );
    expect(error.field).toBe("document 2: table");
    expect(error.message).toMatch(/^document 2: table: must be catalog\.namespace\.table/);
  });

  it("refuses YAML syntax errors, empty files and a name used twice", () => {
    expect(refusal(() => parseIngestionFile("name: [unclosed\n")).field).toBe("yaml");
    expect(refusal(() => parseIngestionFile("")).message).toMatch(/holds no ingestion/);
    const doc = `name: a\nsource: file:///a/\nformat: json\ntable: lake.x.a\n`;
    expect(refusal(() => parseIngestionFile(`${doc}---\n${doc}`)).message).toMatch(/defined twice/);
    expect(refusal(() => parseIngestionFile("- just\n- a list\n")).field).toBe("ingestion");
  });
});
