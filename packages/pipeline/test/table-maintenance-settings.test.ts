/** The `maintenance:` key of an ingestion file: defaults, overrides and refusals. */
import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { parseIngestionSpec, storedMaintenance } from "../src/index.ts";

const valid = {
  name: "orders",
  source: "file:///data/landing/orders/",
  format: "json",
  table: "lake.sales.orders",
};

function refusal(input: Record<string, unknown>): string {
  try {
    parseIngestionSpec(input);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidInputError);
    return (err as Error).message;
  }
  throw new Error("expected an InvalidInputError");
}

describe("maintenance settings", () => {
  it("turns every task on by default, on schedules spread by the ingestion's name", () => {
    const { maintenance } = parseIngestionSpec(valid);
    expect(maintenance).toEqual({
      expireSnapshots: {
        schedule: expect.stringMatching(/^\d+ 2 \* \* \*$/) as unknown,
        olderThanDays: 7,
        retainLast: 10,
      },
      compaction: {
        schedule: expect.stringMatching(/^\d+ 3 \* \* \*$/) as unknown,
        targetFileSizeBytes: 128 * 1024 * 1024,
        minInputFiles: 5,
      },
      rewriteManifests: { schedule: expect.stringMatching(/^\d+ 4 \* \* 0$/) as unknown },
    });
    const other = parseIngestionSpec({ ...valid, name: "invoices" }).maintenance;
    expect(other).not.toEqual(maintenance);
  });

  it("takes each task's settings, turns tasks off with false, and all of them with maintenance: false", () => {
    const { maintenance } = parseIngestionSpec({
      ...valid,
      maintenance: {
        expireSnapshots: { schedule: "0 * * * *", olderThanDays: 2, retainLast: 3 },
        compaction: { targetFileSizeMb: 256, minInputFiles: 10 },
        rewriteManifests: false,
      },
    });
    expect(maintenance).toMatchObject({
      expireSnapshots: { schedule: "0 * * * *", olderThanDays: 2, retainLast: 3 },
      compaction: { targetFileSizeBytes: 256 * 1024 * 1024, minInputFiles: 10 },
      rewriteManifests: { schedule: null },
    });
    const off = parseIngestionSpec({ ...valid, maintenance: false }).maintenance;
    expect(off).toMatchObject({
      expireSnapshots: { schedule: null },
      compaction: { schedule: null },
      rewriteManifests: { schedule: null },
    });
  });

  it("leaves compaction off under modified: replace, and refuses it there with what to change", () => {
    const replace = parseIngestionSpec({ ...valid, modified: "replace" }).maintenance;
    expect(replace).toMatchObject({ compaction: { schedule: null }, expireSnapshots: { olderThanDays: 7 } });
    expect(refusal({ ...valid, modified: "replace", maintenance: { compaction: {} } })).toBe(
      "maintenance.compaction: compaction merges files' rows into shared data files, which `modified: replace` " +
        "cannot swap out later; set `compaction: false`, or `modified: append`",
    );
  });

  it("refuses a bad schedule, a misspelt key and out-of-range thresholds, naming the field", () => {
    expect(refusal({ ...valid, maintenance: { compaction: { schedule: "every day" } } })).toMatch(
      /^maintenance\.compaction\.schedule: "every day" is not a valid cron expression \(it has 2 fields/,
    );
    expect(refusal({ ...valid, maintenance: { expire: {} } })).toBe('maintenance: unknown key "expire"');
    expect(refusal({ ...valid, maintenance: { expireSnapshots: { retainLast: 0 } } })).toBe(
      "maintenance.expireSnapshots.retainLast: must be at least 1",
    );
    expect(refusal({ ...valid, maintenance: { compaction: { minInputFiles: 1 } } })).toBe(
      "maintenance.compaction.minInputFiles: must be at least 2",
    );
  });

  it("gives an ingestion stored before maintenance existed the defaults", () => {
    const settings = storedMaintenance(null, { name: "orders", modifiedPolicy: "ignore" });
    expect(settings).toEqual(parseIngestionSpec(valid).maintenance);
  });
});
