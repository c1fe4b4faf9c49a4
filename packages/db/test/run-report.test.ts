import { describe, expect, it } from "vitest";
import {
  claimFiles,
  failureKind,
  recordOutcomes,
  registerFiles,
  runReport,
  startRun,
  type FileRef,
} from "../src/index.ts";
import { freshDatabase, listing, newIngestion } from "./helpers.ts";

/** A Java failure as Spark reports it: the class and message, then the stack trace and its causes. */
const STACK = Array.from(
  { length: 40 },
  (_, i) => `\tat org.apache.spark.sql.Frame${i}.run(Frame${i}.java:${i})`,
);
const MALFORMED = [
  "[MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION] Malformed records are detected in record parsing: [null].",
  ...STACK,
  "Caused by: com.fasterxml.jackson.core.JsonParseException: Unexpected character ('o' (code 111))",
].join("\n");
const OUT_OF_MEMORY = `Job aborted due to stage failure: Task 0 in stage 3.0 failed 1 times\n${STACK.join("\n")}\nCaused by: java.lang.OutOfMemoryError: Java heap space`;

describe("runReport", () => {
  it("counts a run's files by fate and lists its failures by error type with what to do", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db, { modifiedPolicy: "append" });
    const { created } = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: listing(0, 7),
      modifiedPolicy: "append",
    });
    // The seventh file stays PENDING, to be superseded below.
    const [ok, bad1, bad2, oom, denied, retrying] = created as [
      FileRef,
      FileRef,
      FileRef,
      FileRef,
      FileRef,
      FileRef,
    ];
    await claimFiles(db, { refs: [ok, bad1, bad2, oom, denied, retrying], worker: "w", leaseMs: 60_000 });
    await recordOutcomes(db, {
      worker: "w",
      outcomes: [
        { id: ok.id, version: 1, status: "SUCCESS", recordsIngested: 3 },
        ...[bad1, bad2].map((f) => ({
          id: f.id,
          version: 1,
          status: "FAILED" as const,
          errorType: "MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION",
          errorMessage: `\n  ${MALFORMED}`,
        })),
        {
          id: oom.id,
          version: 1,
          status: "FAILED",
          errorType: "SPARK_EXECUTION",
          errorMessage: OUT_OF_MEMORY,
        },
        {
          id: denied.id,
          version: 1,
          status: "FAILED",
          errorType: "STORAGE_ACCESS_DENIED",
          errorMessage: "access denied",
        },
        {
          id: retrying.id,
          version: 1,
          status: "PENDING",
          errorType: "SPARK_UNAVAILABLE",
          errorMessage: "down",
        },
      ],
    });
    // A second version of the last file, registered by a later run, supersedes the first (SKIPPED).
    const later = await startRun(db, { ingestionId: ingestion.id, trigger: "manual" });
    await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: later.id,
      files: listing(6, 7, "e2"),
      modifiedPolicy: "append",
    });

    const report = await runReport(db, run.id);
    expect(report?.run.id).toBe(run.id);
    expect(report?.ingestion).toEqual({ id: ingestion.id, name: "orders", sourceUri: ingestion.sourceUri });
    expect(report?.totals).toEqual({ files: 7, success: 1, failed: 4, skipped: 1, pending: 1, records: 3 });
    expect(report?.errorTypes).toEqual([
      {
        errorType: "MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION",
        kind: "malformed_file",
        files: 2,
        action: expect.stringContaining("`lakeferry retry orders --failed`") as string,
      },
      {
        errorType: "SPARK_EXECUTION",
        kind: "out_of_memory",
        files: 1,
        action: expect.stringContaining("executor memory") as string,
      },
      {
        errorType: "STORAGE_ACCESS_DENIED",
        kind: "permission_denied",
        files: 1,
        action: expect.stringContaining("credentials") as string,
      },
    ]);
    expect(report?.failures).toEqual([
      ...[bad1, bad2].map((f) => ({
        fileId: f.id,
        path: f.path,
        version: 1,
        errorType: "MALFORMED_RECORD_IN_PARSING.WITHOUT_SUGGESTION",
        error: MALFORMED.split("\n")[0],
        kind: "malformed_file",
        attempts: 1,
      })),
      expect.objectContaining({
        fileId: oom.id,
        error: "Job aborted due to stage failure: Task 0 in stage 3.0 failed 1 times",
        kind: "out_of_memory",
      }),
      expect.objectContaining({ fileId: denied.id, error: "access denied", kind: "permission_denied" }),
    ]);

    const later1 = await runReport(db, later.id, { failureLimit: 0 });
    expect(later1?.totals).toEqual({ files: 1, success: 0, failed: 0, skipped: 0, pending: 1, records: 0 });
    expect((await runReport(db, run.id, { failureLimit: 1 }))?.failures).toHaveLength(1);
  });

  it("answers undefined for a run that does not exist", async () => {
    const db = await freshDatabase();
    expect(await runReport(db, 987_654)).toBeUndefined();
  });

  it.each([
    ["MALFORMED_CSV_RECORD", false, "malformed_file"],
    ["FAILED_READ_FILE.CANNOT_READ_FILE_FOOTER", false, "malformed_file"],
    ["SPARK_BAD_INPUT", false, "malformed_file"],
    ["FAILED_READ_FILE.FILE_NOT_EXIST", false, "file_missing"],
    ["STORAGE_NOT_FOUND", false, "file_missing"],
    ["CAST_INVALID_INPUT", false, "schema_mismatch"],
    ["CANNOT_PARSE_JSON_FIELD", false, "schema_mismatch"],
    ["INCOMPATIBLE_DATA_FOR_TABLE.CANNOT_FIND_DATA", false, "schema_mismatch"],
    ["FAILED_READ_FILE.PARQUET_COLUMN_DATA_TYPE_MISMATCH", false, "schema_mismatch"],
    ["SPARK_REFUSED", false, "permission_denied"],
    ["SPARK_DEADLINE_EXCEEDED", false, "spark_unavailable"],
    ["SPARK_EXECUTION", false, "spark_unavailable"],
    ["SPARK_EXECUTION", true, "out_of_memory"],
    ["STORAGE_THROTTLED", false, "storage_unavailable"],
    ["LEASE_EXPIRED", false, "other"],
    [null, false, "other"],
  ] as const)("classifies %s (out of memory: %s) as %s", (type, outOfMemory, kind) => {
    expect(failureKind(type, outOfMemory)).toBe(kind);
  });
});
