import {
  beginPublish,
  claimFiles,
  listFiles,
  openBatch,
  readBatch,
  runReport,
  type FileRecord,
} from "@lakeferry/db";
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import {
  discoverFiles,
  parseIngestionFile,
  parseIngestionSpec,
  resolveBatch,
  TableMaintainer,
  TableWriteLeases,
  waitForRun,
} from "../src/index.ts";
import { createWorld, jsonRows, rowsPerFile, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

const base = { name: "n", source: "file:///tmp/x/", format: "json", table: "lake.a.b" };

/** Two good records, one that is not JSON, one whose id is not a number, one good (5 parsed, 2 bad). */
const MIXED = '{"id":1,"v":"a"}\n{"id":2,"v":"b"}\n{"id":3,"v":\n{"id":"x","v":"d"}\n{"id":5,"v":"e"}\n';
const ONE_BAD = '{"id":7,"v":"g"}\n{"id":8,"v":"h"}\n{"id":9,"v":"i"}\n{oops}\n';

const byPath = (files: FileRecord[]): Map<string, FileRecord> =>
  new Map(files.map((file) => [file.filePath, file]));

describe("bad records: ingestion file keys", () => {
  it("reads onError and maxBadRecords as a count or a percentage; abortFile stores nothing", () => {
    expect(parseIngestionSpec({ ...base, onError: "continue" })).toMatchObject({
      badRecords: { onError: "continue" },
    });
    expect(parseIngestionSpec({ ...base, onError: "continue", maxBadRecords: 100 })).toMatchObject({
      badRecords: { onError: "continue", maxBadRecords: { count: 100 } },
    });
    expect(parseIngestionSpec({ ...base, onError: "skipFile", maxBadRecords: "1.5%" })).toMatchObject({
      badRecords: { onError: "skipFile", maxBadRecords: { percent: 1.5 } },
    });
    expect(parseIngestionSpec({ ...base })).toMatchObject({ badRecords: null });
    expect(parseIngestionSpec({ ...base, onError: "abortFile" })).toMatchObject({ badRecords: null });
  });

  it("refuses each wrong use with what to write instead", () => {
    expect(() => parseIngestionSpec({ ...base, onError: "ignore" })).toThrow(/^onError: Invalid option/);
    expect(() => parseIngestionSpec({ ...base, onError: "continue", maxBadRecords: "lots" })).toThrow(
      'maxBadRecords: "lots" is not a limit: write a count of records (100) or a percentage of a file\'s records ("1%", at most 100%)',
    );
    expect(() => parseIngestionSpec({ ...base, onError: "continue", maxBadRecords: "150%" })).toThrow(
      /maxBadRecords: "150%" is not a limit/,
    );
    expect(() => parseIngestionSpec({ ...base, onError: "continue", maxBadRecords: -1 })).toThrow(
      /maxBadRecords: -1 is not a limit/,
    );
    expect(() => parseIngestionSpec({ ...base, maxBadRecords: 10 })).toThrow(
      "maxBadRecords: abortFile fails a file at its first bad record; use onError: continue (bad records up to the limit go to <table>__rejected, beyond it the file fails) or skipFile (beyond it the file is skipped)",
    );
    expect(() => parseIngestionSpec({ ...base, format: "parquet", onError: "skipFile" })).toThrow(
      "onError: parquet files have no per-record errors (a corrupt file fails whole); onError applies to json and csv, leave it out",
    );
    expect(() => parseIngestionSpec({ ...base, onError: "continue", options: { mode: "FAILFAST" } })).toThrow(
      "options.mode: onError: continue sets the reader's mode; leave options.mode out",
    );
    expect(() => parseIngestionSpec({ ...base, options: { mode: "PERMISSIVE" } })).toThrow(
      "options.mode: PERMISSIVE turns bad records into rows of nulls without a trace; use onError: continue (bad records go to <table>__rejected)",
    );
    expect(() => parseIngestionSpec({ ...base, options: { mode: "DROPMALFORMED" } })).toThrow(
      /options\.mode: DROPMALFORMED drops bad records without a trace; use onError: continue .* or skipFile/,
    );
    expect(() => parseIngestionSpec({ ...base, options: { columnNameOfCorruptRecord: "_bad" } })).toThrow(
      /options\.columnNameOfCorruptRecord: lakeferry keeps bad records itself: onError: continue puts them in <table>__rejected/,
    );
    expect(
      parseIngestionFile(
        "name: orders\nsource: file:///in/\nformat: csv\ntable: lake.s.t\nonError: skipFile\nmaxBadRecords: 1%\n",
      ),
    ).toMatchObject([{ badRecords: { onError: "skipFile", maxBadRecords: { percent: 1 } } }]);
  });
});

describe("bad records through the pipeline", () => {
  it("continue: one batch lands the good rows and the bad ones in <table>__rejected, and records each file's counts", async () => {
    const w = (world = await createWorld());
    const good = await w.file("good.json", jsonRows(100, 3));
    const mixed = await w.file("mixed.json", MIXED);
    const ingestion = await w.ingestion({ onError: "continue" });
    await w.worker({ batch: { maxWaitMs: 1_000 } });

    const run = await discoverFiles(w, ingestion);
    expect(await waitForRun(w, run.run.id, { timeoutMs: 90_000 })).toMatchObject({ total: 2, settled: 2 });
    const files = byPath(await listFiles(w.db, ingestion.id));
    expect(files.get(good)).toMatchObject({
      status: "SUCCESS",
      recordsIngested: 3,
      recordsParsed: 3,
      recordsRejected: 0,
      firstError: null,
    });
    expect(files.get(mixed)).toMatchObject({
      status: "SUCCESS",
      recordsIngested: 3,
      recordsParsed: 5,
      recordsRejected: 2,
      firstError: 'record 3: malformed JSON: {"id":3,"v":',
      errorType: null,
    });
    // One batch, one snapshot for both files; the batch record keeps the quarantine's staged snapshot.
    const batchId = files.get(good)?.batchId;
    expect(files.get(mixed)?.batchId).toBe(batchId);
    const batch = await readBatch(w.db, batchId!);
    expect(batch).toMatchObject({ state: "COMMITTED" });
    expect(batch?.rejectedStagedSnapshotId).toMatch(/^-?\d+$/);

    expect(await rowsPerFile(w.spark, w.table())).toEqual({ [good]: 3, [mixed]: 3 });
    const rejected = await w.spark.sql(
      `SELECT _source_file, record_number, raw_record, error, _batch_id FROM ${w.table()}__rejected ORDER BY record_number`,
    );
    expect(rejected).toEqual([
      {
        _source_file: mixed,
        record_number: 3,
        raw_record: '{"id":3,"v":',
        error: "malformed JSON",
        _batch_id: batchId,
      },
      {
        _source_file: mixed,
        record_number: 4,
        raw_record: '{"id":"x","v":"d"}',
        error: "value does not fit the schema in column(s) id",
        _batch_id: batchId,
      },
    ]);
    // The version's history holds the same counts.
    const [version] = (
      await w.db.pool.query<{ records_parsed: string; records_rejected: string }>(
        `SELECT records_parsed, records_rejected FROM file_versions WHERE file_id = $1`,
        [files.get(mixed)?.id],
      )
    ).rows;
    expect(version).toEqual({ records_parsed: "5", records_rejected: "2" });

    // Table maintenance keeps the quarantine table too, under the table's lease.
    const maintainer = new TableMaintainer({
      db: w.db,
      spark: w.spark,
      leases: new TableWriteLeases({ db: w.db, holder: "test", logger: w.logger, ttlMs: 60_000 }),
      logger: w.logger,
    });
    const report = await maintainer.run(ingestion, "rewriteManifests", new AbortController().signal);
    expect(report).toMatchObject({ table: w.table(), kind: "done" });
    expect(report.rejected).toMatchObject({
      task: "rewriteManifests",
      table: `${w.table()}__rejected`,
      kind: "done",
    });
  });

  it("skipFile and maxBadRecords: files beyond the limit are SKIPPED or FAILED alone, their neighbours land in one batch", async () => {
    const w = (world = await createWorld());
    const good = await w.file("skip/good.json", jsonRows(100, 3));
    const mixed = await w.file("skip/mixed.json", MIXED);
    const oneBad = await w.file("skip/one-bad.json", ONE_BAD);
    // One bad record of four (25 %) is within 30 %; two of five (40 %) are not.
    const ingestion = await w.ingestion({ onError: "skipFile", maxBadRecords: "30%" });
    await w.worker({ batch: { maxWaitMs: 1_000 } });

    const run = await discoverFiles(w, ingestion);
    expect(await waitForRun(w, run.run.id, { timeoutMs: 90_000 })).toMatchObject({ total: 3, settled: 3 });
    const files = byPath(await listFiles(w.db, ingestion.id));
    expect(files.get(mixed)).toMatchObject({
      status: "SKIPPED",
      errorType: "BAD_RECORDS",
      recordsIngested: 0,
      recordsParsed: 5,
      recordsRejected: 2,
      retryCount: 0,
      firstError: 'record 3: malformed JSON: {"id":3,"v":',
    });
    expect(files.get(mixed)?.errorMessage).toMatch(
      /^2 of 5 records are bad, more than maxBadRecords \(30%\); the file is skipped and nothing of it lands\. First: record 3: malformed JSON/,
    );
    expect(files.get(good)).toMatchObject({ status: "SUCCESS", recordsIngested: 3, recordsRejected: 0 });
    expect(files.get(oneBad)).toMatchObject({
      status: "SUCCESS",
      recordsIngested: 3,
      recordsParsed: 4,
      recordsRejected: 1,
      firstError: "record 4: malformed JSON: {oops}",
    });
    const report = await runReport(w.db, run.run.id);
    expect(report?.errorTypes).toEqual([
      expect.objectContaining({ errorType: "BAD_RECORDS", kind: "bad_records", files: 1 }),
    ]);
    expect(report?.errorTypes[0]?.action).toMatch(
      /raise `maxBadRecords`.*lakeferry retry orders --file PATH/,
    );
    // The neighbours went again together, without the skipped file.
    expect(files.get(good)?.batchId).toBe(files.get(oneBad)?.batchId);
    expect(await rowsPerFile(w.spark, w.table())).toEqual({ [good]: 3, [oneBad]: 3 });
    const rejected = await w.spark.sql(`SELECT _source_file, record_number FROM ${w.table()}__rejected`);
    expect(rejected).toEqual([{ _source_file: oneBad, record_number: 4 }]);

    // Under continue with a count, the file beyond it FAILS (not retried) with the same counts.
    const strict = await w.ingestion({
      name: "strict",
      onError: "continue",
      maxBadRecords: 1,
      pattern: "strict/*.json",
    });
    const failing = await w.file("strict/mixed.json", MIXED);
    const strictRun = await discoverFiles(w, strict);
    expect(await waitForRun(w, strictRun.run.id, { timeoutMs: 90_000 })).toMatchObject({
      total: 1,
      settled: 1,
    });
    const [failed] = await listFiles(w.db, strict.id);
    expect(failed).toMatchObject({
      filePath: failing,
      status: "FAILED",
      errorType: "BAD_RECORDS",
      attempts: 1,
      recordsParsed: 5,
      recordsRejected: 2,
    });
    expect(failed?.errorMessage).toMatch(/more than maxBadRecords \(1\); the file fails/);
  });

  for (const rejectedPublished of [false, true]) {
    it(`recovery publishes a decided batch's bad records with its rows${rejectedPublished ? ", not twice when its writer had published them before it died" : ""}`, async () => {
      const w = (world = await createWorld());
      await w.file("mixed.json", MIXED);
      const ingestion = await w.ingestion({ onError: "continue" });
      await discoverFiles(w, ingestion);
      await w.queue.drainAll();
      const [file] = await listFiles(w.db, ingestion.id);
      if (!file) throw new Error("file not registered");
      // A writer claims the file, opens a batch, stages rows and bad records, decides, and dies.
      const worker = "crashed";
      await claimFiles(w.db, { refs: [{ id: file.id, version: 1 }], worker, leaseMs: 1_000 });
      const batchId = randomUUID();
      const ingestedAtMicros = BigInt(Date.now()) * 1000n;
      await openBatch(w.db, {
        batchId,
        ingestionId: ingestion.id,
        table: w.table(),
        worker,
        files: [{ id: file.id, version: 1 }],
        ingestedAtMicros,
      });
      const staged = await w.writer.stage({
        batchId,
        table: w.table(),
        format: "json",
        schema: "id BIGINT, v STRING",
        files: [file.filePath],
        ingestedAtMicros,
        badRecords: { onError: "continue" },
      });
      const counts = staged.recordCounts?.get(file.filePath);
      expect(counts).toMatchObject({ parsed: 5, rejected: 2 });
      expect(
        await beginPublish(w.db, {
          batchId,
          worker,
          stagedSnapshotId: staged.stagedSnapshotId,
          rejectedStagedSnapshotId: staged.rejected!.stagedSnapshotId,
          records: [
            {
              fileId: file.id,
              records: staged.records.get(file.filePath) ?? 0,
              parsed: counts!.parsed,
              rejected: counts!.rejected,
              firstError: counts!.firstError!,
            },
          ],
          publishLeaseMs: 1,
        }),
      ).toBe(true);
      if (rejectedPublished) {
        const rejected = staged.rejected!;
        expect((await w.writer.publish(rejected.table, rejected.stagedSnapshotId)).kind).toBe("published");
      }
      expect(await rowsPerFile(w.spark, w.table())).toEqual({});

      const { resolution } = await resolveBatch(w.db, w.writer, batchId, {
        skipLive: false,
        logger: w.logger,
      });
      expect(resolution).toBe("committed");
      expect(await rowsPerFile(w.spark, w.table())).toEqual({ [file.filePath]: 3 });
      const rejected = await w.spark.sql(
        `SELECT record_number FROM ${w.table()}__rejected ORDER BY record_number`,
      );
      expect(rejected).toEqual([{ record_number: 3 }, { record_number: 4 }]);
      const [settled] = await listFiles(w.db, ingestion.id);
      expect(settled).toMatchObject({
        status: "SUCCESS",
        recordsIngested: 3,
        recordsParsed: 5,
        recordsRejected: 2,
        firstError: 'record 3: malformed JSON: {"id":3,"v":',
      });
      // Resolving again publishes nothing twice.
      await resolveBatch(w.db, w.writer, batchId, { skipLive: false, logger: w.logger });
      expect(await w.spark.sql(`SELECT count(*) AS n FROM ${w.table()}__rejected`)).toEqual([{ n: 2 }]);
    });
  }
});
