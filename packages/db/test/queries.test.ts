import { randomUUID } from "node:crypto";
import { InvalidInputError, isRetryable } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import {
  DatabaseError,
  FILE_STATUSES,
  beginPublish,
  claimFiles,
  createDatabase,
  fileHistory,
  finishRun,
  getFile,
  getIngestion,
  getIngestionById,
  listFiles,
  listIngestions,
  listRefusals,
  listRuns,
  openBatch,
  pendingFiles,
  recordOutcomes,
  registerFiles,
  resetFilesForRetry,
  runSettled,
  saveListingCursor,
  startRun,
  statusCounts,
  upsertIngestion,
  type Database,
  type FileRef,
  type IngestionInput,
} from "../src/index.ts";
import { freshDatabase, listing, newIngestion } from "./helpers.ts";

/** Five files: SUCCESS, FAILED, PENDING (retrying), PROCESSING, PENDING (never claimed). */
async function mixedIngestion(db: Database) {
  const { ingestion, run } = await newIngestion(db);
  const { created } = await registerFiles(db, {
    ingestionId: ingestion.id,
    runId: run.id,
    files: listing(0, 5),
    modifiedPolicy: "ignore",
  });
  const [ok, bad, retry, busy, fresh] = created as [FileRef, FileRef, FileRef, FileRef, FileRef];
  await claimFiles(db, { refs: [ok, bad, retry, busy], worker: "w", leaseMs: 60_000 });
  const batchId = randomUUID();
  await openBatch(db, {
    batchId,
    ingestionId: ingestion.id,
    table: "lake.db.orders",
    worker: "w",
    files: [ok, bad],
    ingestedAtMicros: 1_700_000_000_000_000n,
  });
  expect(
    await beginPublish(db, {
      batchId,
      worker: "w",
      stagedSnapshotId: "4",
      records: [
        { fileId: ok.id, records: 3 },
        { fileId: bad.id, records: 0 },
      ],
      publishLeaseMs: 60_000,
    }),
  ).toBe(true);
  await recordOutcomes(db, {
    worker: "w",
    outcomes: [
      { id: ok.id, version: 1, status: "SUCCESS", recordsIngested: 3 },
      { id: bad.id, version: 1, status: "FAILED", errorType: "SCHEMA_MISMATCH", errorMessage: "column x" },
      { id: retry.id, version: 1, status: "PENDING", errorType: "TIMEOUT", errorMessage: "slow" },
    ],
    batch: { id: batchId, state: "COMMITTED", snapshotId: "5" },
  });
  return { ingestion, run, ok, bad, retry, busy, fresh, batchId };
}

const ingestionInput = (overrides: Partial<IngestionInput> = {}): IngestionInput => ({
  name: "events",
  sourceUri: "s3://landing/events/",
  format: "json",
  readerOptions: {},
  schemaDdl: null,
  glob: null,
  targetTable: "lake.db.events",
  schedule: "0 * * * *",
  maxAttempts: 5,
  backoffMs: 1000,
  modifiedPolicy: "ignore",
  listing: { incremental: true },
  enabled: true,
  ...overrides,
});

describe("file queries", () => {
  it("counts every status, lists and pages files, and finds one by path", async () => {
    const db = await freshDatabase();
    const { ingestion, ok, bad, retry, fresh, busy } = await mixedIngestion(db);
    const { ingestion: empty } = await upsertIngestion(db, ingestionInput({ name: "empty" }));

    expect(await statusCounts(db, ingestion.id)).toEqual({
      PENDING: 2,
      PROCESSING: 1,
      SUCCESS: 1,
      FAILED: 1,
      SKIPPED: 0,
    });
    expect(Object.keys(await statusCounts(db, empty.id)).sort()).toEqual([...FILE_STATUSES].sort());
    expect(Object.values(await statusCounts(db, empty.id))).toEqual([0, 0, 0, 0, 0]);

    expect((await listFiles(db, ingestion.id, { status: "PENDING" })).map((f) => f.id)).toEqual([
      retry.id,
      fresh.id,
    ]);
    const page1 = await listFiles(db, ingestion.id, { limit: 2 });
    const page2 = await listFiles(db, ingestion.id, { limit: 2, afterId: page1.at(-1)!.id });
    const page3 = await listFiles(db, ingestion.id, { limit: 2, afterId: page2.at(-1)!.id });
    expect([...page1, ...page2, ...page3].map((f) => f.id)).toEqual([
      ok.id,
      bad.id,
      retry.id,
      busy.id,
      fresh.id,
    ]);
    expect(await listFiles(db, empty.id)).toEqual([]);

    const record = await getFile(db, ingestion.id, bad.path);
    expect(record).toMatchObject({
      id: bad.id,
      ingestionId: ingestion.id,
      status: "FAILED",
      errorType: "SCHEMA_MISMATCH",
    });
    expect(Object.keys(record!).sort()).toEqual(
      [
        "id",
        "ingestionId",
        "filePath",
        "fileSize",
        "modifiedAt",
        "etag",
        "version",
        "status",
        "discoveredAt",
        "processingStartedAt",
        "processedAt",
        "recordsIngested",
        "recordsParsed",
        "recordsRejected",
        "firstError",
        "bytesRead",
        "processingDurationMs",
        "errorMessage",
        "errorType",
        "retryCount",
        "attempts",
        "runId",
        "leaseOwner",
        "leaseExpiresAt",
        "batchId",
        "snapshotId",
        "updatedAt",
      ].sort(),
    );
    expect(await getFile(db, ingestion.id, "s3://landing/orders/missing.csv")).toBeUndefined();
    expect(await getFile(db, empty.id, bad.path)).toBeUndefined();
  });

  it("resets FAILED files, or one named settled file, for another try at the same version", async () => {
    const db = await freshDatabase();
    const { ingestion, ok, bad, retry } = await mixedIngestion(db);

    expect(await resetFilesForRetry(db, ingestion.id, { failedOnly: true })).toEqual([
      { id: bad.id, version: 1, path: bad.path },
    ]);
    expect(await getFile(db, ingestion.id, bad.path)).toMatchObject({
      status: "PENDING",
      version: 1,
      attempts: 1,
      retryCount: 1,
      errorType: "SCHEMA_MISMATCH",
      batchId: null,
    });
    expect((await fileHistory(db, bad.id)).versions).toMatchObject([{ version: 1, status: "PENDING" }]);
    expect(await claimFiles(db, { refs: [bad], worker: "w2", leaseMs: 60_000 })).toMatchObject([
      { attempt: 2, previousBatchId: null },
    ]);

    // A named SUCCESS file can be re-ingested; with failedOnly it is left alone; unsettled files are never reset.
    expect(await resetFilesForRetry(db, ingestion.id, { path: ok.path, failedOnly: true })).toEqual([]);
    expect(await resetFilesForRetry(db, ingestion.id, { path: retry.path })).toEqual([]);
    expect(await resetFilesForRetry(db, ingestion.id, { path: ok.path })).toEqual([
      { id: ok.id, version: 1, path: ok.path },
    ]);
    expect(await claimFiles(db, { refs: [ok], worker: "w2", leaseMs: 60_000 })).toMatchObject([
      { attempt: 2, previousBatchId: null },
    ]);
  });

  it("reports a run settled once every version it registered reached SUCCESS, FAILED or SKIPPED", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db, { modifiedPolicy: "append" });
    const files = listing(0, 3);
    const { created } = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files,
      modifiedPolicy: "append",
    });
    expect(await runSettled(db, run.id)).toEqual({ total: 3, settled: 0, failed: 0 });

    await claimFiles(db, { refs: created, worker: "w", leaseMs: 60_000 });
    const [a, b, c] = created as [FileRef, FileRef, FileRef];
    await recordOutcomes(db, {
      worker: "w",
      outcomes: [
        { id: a.id, version: 1, status: "SUCCESS" },
        { id: b.id, version: 1, status: "FAILED", errorType: "X" },
        { id: c.id, version: 1, status: "PENDING" },
      ],
    });
    expect(await runSettled(db, run.id)).toEqual({ total: 3, settled: 2, failed: 1 });

    // c changes before it is retried: its first version is superseded (settled as SKIPPED) and the new
    // version belongs to the next run.
    const run2 = await startRun(db, { ingestionId: ingestion.id, trigger: "schedule" });
    await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run2.id,
      files: [{ ...files[2]!, etag: "new" }],
      modifiedPolicy: "append",
    });
    expect(await runSettled(db, run.id)).toEqual({ total: 3, settled: 3, failed: 1 });
    expect(await runSettled(db, run2.id)).toEqual({ total: 1, settled: 0, failed: 0 });
  });

  it("pages PENDING files for the reconciler, optionally only those idle for a while", async () => {
    const db = await freshDatabase();
    const { ingestion, retry, fresh } = await mixedIngestion(db);
    const { ingestion: other, run } = await newIngestion(db, { name: "second" });
    const { created } = await registerFiles(db, {
      ingestionId: other.id,
      runId: run.id,
      files: listing(10, 11),
      modifiedPolicy: "ignore",
    });

    const all = await pendingFiles(db, { limit: 10 });
    expect(all).toEqual([
      { id: retry.id, version: 1, path: retry.path, ingestionId: ingestion.id },
      { id: fresh.id, version: 1, path: fresh.path, ingestionId: ingestion.id },
      { id: created[0]!.id, version: 1, path: created[0]!.path, ingestionId: other.id },
    ]);
    expect(await pendingFiles(db, { limit: 1, afterId: retry.id })).toEqual([all[1]]);
    expect(await pendingFiles(db, { limit: 10, olderThanMs: 3_600_000 })).toEqual([]);
    await db.pool.query(`UPDATE processed_files SET updated_at = now() - interval '2 hours' WHERE id = $1`, [
      fresh.id,
    ]);
    expect(await pendingFiles(db, { limit: 10, olderThanMs: 3_600_000 })).toEqual([all[1]]);
  });
});

describe("ingestions and runs", () => {
  it("creates, replaces and finds ingestions; a changed source resets the listing cursor", async () => {
    const db = await freshDatabase();
    const first = await upsertIngestion(db, ingestionInput());
    expect(first.created).toBe(true);
    expect(first.ingestion).toMatchObject({ ...ingestionInput(), listingCursor: null });
    await saveListingCursor(db, first.ingestion.id, { after: "2026/11/29/f9.json" });

    const same = await upsertIngestion(db, ingestionInput({ maxAttempts: 9, enabled: false }));
    expect(same.created).toBe(false);
    expect(same.ingestion).toMatchObject({
      id: first.ingestion.id,
      maxAttempts: 9,
      enabled: false,
      listingCursor: { after: "2026/11/29/f9.json" },
    });
    expect(same.ingestion.updatedAt.getTime()).toBeGreaterThanOrEqual(first.ingestion.updatedAt.getTime());

    const moved = await upsertIngestion(db, ingestionInput({ sourceUri: "s3://landing/events-v2/" }));
    expect(moved.ingestion.listingCursor).toBeNull();

    await upsertIngestion(db, ingestionInput({ name: "alpha", listing: null, readerOptions: { sep: ";" } }));
    expect((await listIngestions(db)).map((i) => i.name)).toEqual(["alpha", "events"]);
    expect(await getIngestion(db, "alpha")).toMatchObject({ listing: null, readerOptions: { sep: ";" } });
    expect(await getIngestionById(db, first.ingestion.id)).toMatchObject({
      name: "events",
      sourceUri: "s3://landing/events-v2/",
    });
    expect(await getIngestion(db, "nope")).toBeUndefined();
    expect(await getIngestionById(db, 424242)).toBeUndefined();

    await expect(upsertIngestion(db, ingestionInput({ maxAttempts: 0 }))).rejects.toThrow(InvalidInputError);
    await expect(upsertIngestion(db, ingestionInput({ modifiedPolicy: "merge" as never }))).rejects.toThrow(
      /modifiedPolicy: must be one of ignore, append, replace/,
    );
    await expect(saveListingCursor(db, 424242, {})).rejects.toThrow(/no ingestion with id 424242/);
  });

  it("starts, finishes and lists runs newest first", async () => {
    const db = await freshDatabase();
    const { ingestion } = await upsertIngestion(db, ingestionInput());
    const r1 = await startRun(db, { ingestionId: ingestion.id, trigger: "schedule" });
    expect(r1).toMatchObject({
      ingestionId: ingestion.id,
      trigger: "schedule",
      status: "running",
      finishedAt: null,
      filesFound: 0,
    });
    const r2 = await startRun(db, { ingestionId: ingestion.id, trigger: "manual" });
    const ok = await finishRun(db, r1.id, { filesFound: 10, filesNew: 4, filesModified: 1 });
    expect(ok).toMatchObject({
      status: "succeeded",
      filesFound: 10,
      filesNew: 4,
      filesModified: 1,
      errorType: null,
    });
    expect(ok.finishedAt).toBeInstanceOf(Date);
    const failed = await finishRun(db, r2.id, {
      filesFound: 0,
      filesNew: 0,
      filesModified: 0,
      error: { type: "STORAGE_DENIED", message: "403" },
    });
    expect(failed).toMatchObject({ status: "failed", errorType: "STORAGE_DENIED", errorMessage: "403" });
    const r3 = await startRun(db, { ingestionId: ingestion.id, trigger: "upstream" });
    const long = `${"x/".repeat(5_000)}a.json`; // past what a B-tree index entry may hold
    const refused = [
      { path: "b.csv", reason: "does not match the ingestion's pattern" },
      { path: "../a.json", reason: "leaves the source" },
      { path: "b.csv", reason: "does not match the ingestion's pattern" },
      { path: long, reason: "no such object" },
      { path: long, reason: "no such object" },
    ];
    expect(
      await finishRun(db, r3.id, { filesFound: 0, filesNew: 0, filesModified: 0, refused }),
    ).toMatchObject({
      status: "succeeded",
      filesRefused: 3,
    });
    expect(await listRefusals(db, r3.id)).toEqual([refused[1], refused[0], refused[3]]);
    expect(await listRefusals(db, r1.id)).toEqual([]);
    expect((await listRuns(db, ingestion.id)).map((r) => r.id)).toEqual([r3.id, r2.id, r1.id]);
    expect((await listRuns(db, ingestion.id, 1)).map((r) => r.id)).toEqual([r3.id]);
    await expect(finishRun(db, 999, { filesFound: 0, filesNew: 0, filesModified: 0 })).rejects.toThrow(
      InvalidInputError,
    );
  });
});

describe("error classification", () => {
  it("reports an unreachable server as a retryable DatabaseError on both the pg and the Prisma paths", async () => {
    const db = createDatabase({
      connectionString: "postgresql://nobody:x@127.0.0.1:1/none",
      schema: "nowhere",
    });
    try {
      for (const attempt of [() => statusCounts(db, 1), () => getIngestion(db, "x")]) {
        const error = await attempt().catch((e: unknown) => e);
        expect(error).toBeInstanceOf(DatabaseError);
        expect(error).toMatchObject({ code: "DB_UNAVAILABLE", retryable: true });
        expect(isRetryable(error)).toBe(true);
      }
    } finally {
      await db.close();
    }
  });

  it("reports a constraint violation as a permanent DatabaseError with its SQLSTATE", async () => {
    const db = await freshDatabase();
    const { ingestion } = await newIngestion(db);
    const batchId = randomUUID();
    const batch = {
      batchId,
      ingestionId: ingestion.id,
      table: "t",
      worker: "w",
      files: [],
      ingestedAtMicros: 1n,
    };
    await openBatch(db, batch);
    const error = await openBatch(db, batch).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseError);
    expect(error).toMatchObject({ code: "DB_ERROR", retryable: false, sqlState: "23505" });
    expect((error as Error).message).toMatch(/^openBatch: duplicate key/);
  });

  it("refuses bad input before touching the database", () => {
    expect(() => createDatabase({ connectionString: "postgresql://x", schema: "bad-name; drop" })).toThrow(
      InvalidInputError,
    );
    const db = createDatabase({ connectionString: "postgresql://nobody:x@127.0.0.1:1/none" });
    return Promise.all([
      expect(
        claimFiles(db, {
          refs: [
            { id: 1, version: 1 },
            { id: 1, version: 1 },
          ],
          worker: "w",
          leaseMs: 1,
        }),
      ).rejects.toThrow(/listed twice/),
      expect(
        openBatch(db, {
          batchId: "not-a-uuid",
          ingestionId: 1,
          table: "t",
          worker: "w",
          files: [],
          ingestedAtMicros: 1n,
        }),
      ).rejects.toThrow(/batchId: must be a UUID/),
      expect(
        recordOutcomes(db, {
          worker: "w",
          outcomes: [{ id: 1, version: 1, status: "SUCCESS", snapshotId: "12.5" }],
        }),
      ).rejects.toThrow(/snapshotId/),
    ]).finally(() => db.close());
  });
});
