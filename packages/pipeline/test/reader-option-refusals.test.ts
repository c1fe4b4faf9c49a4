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

describe("reader options that would lose data", () => {
  it.each([
    [{ mode: "DROPMALFORMED" }, "options.mode", /DROPMALFORMED drops bad records.*use onError/],
    [{ mode: "dropMalformed" }, "options.mode", /use onError/],
    [{ ignoreCorruptFiles: true }, "options.ignoreCorruptFiles", /record it SUCCESS.*see onError/],
    [{ ignoreMissingFiles: "true" }, "options.ignoreMissingFiles", /SUCCESS with no rows/],
    [{ pathGlobFilter: "*.json" }, "options.pathGlobFilter", /choose files with pattern/],
    [{ recursiveFileLookup: true }, "options.recursiveFileLookup", /pattern \(e\.g\. \*\*\/\*\.json\)/],
    [{ modifiedBefore: "2024-01-01T00:00:00" }, "options.modifiedBefore", /listing\.minAgeMs/],
    [{ ModifiedAfter: "2024-01-01T00:00:00" }, "options.ModifiedAfter", /listing\.partitions/],
    [{ "fs.s3a.access.key": "AKIA" }, "options.fs.s3a.access.key", /Hadoop settings.*credentials/],
    [{ "spark.hadoop.fs.s3a.endpoint": "x" }, "options.spark.hadoop.fs.s3a.endpoint", /credentials/],
    [{ "hadoop.security.authentication": "x" }, "options.hadoop.security.authentication", /credentials/],
    [{ path: "/elsewhere" }, "options.path", /source and pattern/],
    [
      { "spark.sql.files.maxPartitionBytes": "1" },
      "options.spark.sql.files.maxPartitionBytes",
      /Spark server/,
    ],
    [
      { "parquet.crypto.factory.class": "x.Y" },
      "options.parquet.crypto.factory.class",
      /reader options have no dot/,
    ],
    [{ "fsync.like.name": "x" }, "options.fsync.like.name", /dotted names/],
  ])("refuses %j at apply, naming the key to use", (options, field, message) => {
    const error = refusal(() => parseIngestionSpec({ ...valid, options }));
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
    // One line, short enough to read in a terminal.
    expect(error.message).not.toContain("\n");
    expect(error.message.length).toBeLessThan(200);
  });

  it("refuses them in a YAML file too, and keeps the options that lose nothing", () => {
    expect(() =>
      parseIngestionFile(
        "name: orders\nsource: file:///in/\nformat: csv\ntable: lake.s.t\noptions:\n  mode: DROPMALFORMED\n",
      ),
    ).toThrow(/options\.mode: DROPMALFORMED/);
    const kept = parseIngestionSpec({
      ...valid,
      options: { mode: "FAILFAST", header: true, multiLine: "true" },
    });
    expect(kept.readerOptions).toEqual({
      mode: "FAILFAST",
      header: "true",
      multiLine: "true",
    });
  });
});

describe("listing.includeHidden and listing.minAgeMs", () => {
  it("default to off and 5 s for a local folder, 0 for object stores, and keep what is given", () => {
    expect(parseIngestionSpec(valid).listing).toMatchObject({ includeHidden: false, minAgeMs: 5_000 });
    for (const source of ["s3://landing/in/", "gs://landing/in/", "az://account/container/in/"]) {
      expect(parseIngestionSpec({ ...valid, source }).listing).toMatchObject({
        includeHidden: false,
        minAgeMs: 0,
      });
    }
    expect(
      parseIngestionSpec({ ...valid, listing: { includeHidden: true, minAgeMs: 0 } }).listing,
    ).toMatchObject({ includeHidden: true, minAgeMs: 0 });
  });

  it.each([
    [{ minAgeMs: -1 }, "listing.minAgeMs", /at least 0/],
    [{ minAgeMs: 1.5 }, "listing.minAgeMs", /whole number/],
    [{ minAgeMs: 86_400_001 }, "listing.minAgeMs", /at most a day/],
    [{ includeHidden: "yes" }, "listing.includeHidden", /boolean/],
  ])("refuses listing %j", (listing, field, message) => {
    const error = refusal(() => parseIngestionSpec({ ...valid, listing }));
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
  });
});
