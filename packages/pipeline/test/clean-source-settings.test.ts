import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { parseIngestionFile, parseIngestionSpec } from "../src/index.ts";
import { moveTarget, storedCleanSource } from "../src/clean-source-settings.ts";

const valid = {
  name: "orders",
  source: "s3://landing/orders/",
  format: "json",
  table: "lake.sales.orders",
};

/** The refusal's text, `field: message` (fails the test when the spec is accepted). */
function refusal(spec: unknown): string {
  try {
    parseIngestionSpec(spec);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidInputError);
    return (err as InvalidInputError).message;
  }
  throw new Error("expected the spec to be refused");
}

const DAY = 86_400_000;

describe("cleanSource in the ingestion file", () => {
  it("is off by default, and with off or false", () => {
    expect(parseIngestionSpec(valid).cleanSource).toBeNull();
    expect(parseIngestionSpec({ ...valid, cleanSource: "off" }).cleanSource).toBeNull();
    expect(parseIngestionSpec({ ...valid, cleanSource: false }).cleanSource).toBeNull();
    expect(parseIngestionSpec({ ...valid, cleanSource: { mode: "off" } }).cleanSource).toBeNull();
  });

  it("takes delete alone with a 30-day retention and an hourly schedule spread by name", () => {
    const settings = parseIngestionSpec({ ...valid, cleanSource: "delete" }).cleanSource;
    expect(settings).toEqual({
      mode: "delete",
      moveTo: null,
      retentionMs: 30 * DAY,
      schedule: expect.stringMatching(/^\d{1,2} \* \* \* \*$/) as unknown,
    });
    const other = parseIngestionSpec({ ...valid, name: "returns", cleanSource: "delete" }).cleanSource;
    expect(other).toMatchObject({ mode: "delete" });
  });

  it("takes move with its destination (as a directory), a retention in days, hours or minutes, and a schedule", () => {
    const [input] = parseIngestionFile(`
name: orders
source: s3://landing/orders/
format: json
table: lake.sales.orders
cleanSource:
  mode: move
  moveTo: s3://archive-bucket/orders
  retention: 12h
  schedule: "*/10 * * * *"
`);
    expect(input?.cleanSource).toEqual({
      mode: "move",
      moveTo: "s3://archive-bucket/orders/",
      retentionMs: 12 * 3_600_000,
      schedule: "*/10 * * * *",
    });
    expect(storedCleanSource(input?.cleanSource)).toEqual(input?.cleanSource);
    const sameBucket = { mode: "move", moveTo: "s3://landing/archive/" };
    expect(
      parseIngestionSpec({ ...valid, cleanSource: { ...sameBucket, retention: 0 } }).cleanSource,
    ).toMatchObject({
      retentionMs: 0,
    });
    expect(
      parseIngestionSpec({ ...valid, cleanSource: { ...sameBucket, retention: 45 } }).cleanSource,
    ).toMatchObject({
      retentionMs: 45 * DAY,
    });
    expect(
      parseIngestionSpec({ ...valid, cleanSource: { ...sameBucket, retention: "90m" } }).cleanSource,
    ).toMatchObject({
      retentionMs: 90 * 60_000,
    });
    expect(
      parseIngestionSpec({ ...valid, cleanSource: { mode: "delete", retention: "7d" } }).cleanSource,
    ).toMatchObject({ retentionMs: 7 * DAY });
  });

  it("refuses each wrong setting with a message that says what to write", () => {
    expect(refusal({ ...valid, cleanSource: { mode: "delete", retention: "3d" } })).toBe(
      "cleanSource.retention: must be at least 7d with mode: delete, so that a problem found in the table can " +
        "still be fixed from the source files; or use mode: move",
    );
    const noDestination =
      "cleanSource.moveTo: is required with mode: move: a location outside the source on the same store " +
      "(e.g. cleanSource: {mode: move, moveTo: s3://bucket/archive/})";
    expect(refusal({ ...valid, cleanSource: "move" })).toBe(noDestination);
    expect(refusal({ ...valid, cleanSource: { mode: "move" } })).toBe(noDestination);
    expect(refusal({ ...valid, cleanSource: { mode: "delete", moveTo: "s3://landing/archive/" } })).toBe(
      "cleanSource.moveTo: is only for mode: move (mode is delete)",
    );
    expect(refusal({ ...valid, cleanSource: { mode: "move", moveTo: "gs://archive/orders/" } })).toBe(
      "cleanSource.moveTo: must be on the same store as the source (s3://…), not gs://",
    );
    expect(refusal({ ...valid, cleanSource: { mode: "move", moveTo: "s3://landing/orders/archive/" } })).toBe(
      "cleanSource.moveTo: s3://landing/orders/archive/ overlaps the source s3://landing/orders/: moved files " +
        "would be listed and ingested again; choose a location outside the source",
    );
    // A listing matches key prefixes: `orders` also lists `orders-archive/`.
    expect(
      refusal({
        ...valid,
        source: "s3://landing/orders",
        cleanSource: { mode: "move", moveTo: "s3://landing/orders-archive/" },
      }),
    ).toMatch(/^cleanSource\.moveTo: s3:\/\/landing\/orders-archive\/ overlaps the source/);
    // A destination above the source could put a moved file back inside it.
    expect(refusal({ ...valid, cleanSource: { mode: "move", moveTo: "s3://landing/" } })).toMatch(
      /^cleanSource\.moveTo: s3:\/\/landing\/ overlaps the source s3:\/\/landing\/orders\//,
    );
    expect(
      refusal({
        ...valid,
        source: "az://acct1/landing/orders/",
        cleanSource: { mode: "move", moveTo: "az://acct2/archive/orders/" },
      }),
    ).toBe("cleanSource.moveTo: must be in the source's storage account acct1, not acct2");
    expect(refusal({ ...valid, cleanSource: { mode: "move", moveTo: "archive/" } })).toMatch(
      /^cleanSource\.moveTo: no scheme in "archive\/"/,
    );
    expect(
      refusal({ ...valid, cleanSource: { mode: "move", moveTo: "s3://a/b/", retention: "a week" } }),
    ).toBe(
      'cleanSource.retention: "a week" is not a retention: write days (30) or a number with a unit d, h or m ' +
        "(30d, 12h), at most 3650d",
    );
    expect(refusal({ ...valid, cleanSource: { mode: "archive" } })).toMatch(/^cleanSource\.mode: /);
    expect(refusal({ ...valid, cleanSource: { mode: "delete", moveDestination: "x" } })).toBe(
      'cleanSource: unknown key "moveDestination"',
    );
    expect(refusal({ ...valid, cleanSource: { mode: "delete", schedule: "hourly" } })).toMatch(
      /^cleanSource\.schedule: "hourly" is not a valid cron expression/,
    );
  });

  it("refuses, before applying any, a file whose one ingestion moves files into another's source", () => {
    const file = (moveTo: string): string => `
name: orders
source: s3://landing/orders/
format: json
table: lake.sales.orders
cleanSource: { mode: move, moveTo: ${moveTo} }
---
name: returns
source: s3://landing/returns/
format: json
table: lake.sales.returns
`;
    expect(() => parseIngestionFile(file("s3://landing/returns/archive/"))).toThrow(
      'document 1: cleanSource.moveTo: s3://landing/returns/archive/ overlaps the source of ingestion "returns" ' +
        "(s3://landing/returns/) in this file: it would ingest the moved files; choose a location outside every " +
        "ingestion's source",
    );
    expect(parseIngestionFile(file("s3://landing/archive/orders/"))).toHaveLength(2);
  });

  it("moves an object to the same path below moveTo as it had below the source's directory", () => {
    expect(moveTarget("s3://landing/orders/2024/01/a.json", "s3://landing/orders/", "s3://archive/o/")).toBe(
      "s3://archive/o/2024/01/a.json",
    );
    expect(moveTarget("file:///data/in/a.json", "file:///data/in/", "file:///data/done/")).toBe(
      "file:///data/done/a.json",
    );
    // A source that is a name prefix keeps the whole name.
    expect(moveTarget("s3://landing/orders-1.json", "s3://landing/orders-", "s3://landing-archive/")).toBe(
      "s3://landing-archive/orders-1.json",
    );
  });
});
