/**
 * The Postgres side of state retention: which file versions may go, that registration reads a file's
 * current version from processed_files (so a file whose history was pruned is not taken for changed), and
 * that a row back in use between the read and the delete is kept.
 */
import { describe, expect, it } from "vitest";
import { randomUUID } from "node:crypto";
import {
  beginPublish,
  claimFiles,
  deletePrunedRows,
  fileHistory,
  openBatch,
  prunableRows,
  recordOutcomes,
  registerFiles,
  type ModifiedPolicy,
} from "../src/index.ts";
import { freshDatabase, listing, newIngestion } from "./helpers.ts";

const future = (): Date => new Date(Date.now() + 60_000);

describe("state retention in Postgres", () => {
  it("prunes settled versions but keeps the latest when newer than the current one (an ignored change)", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db);
    const register = (etag: string, policy: ModifiedPolicy) =>
      registerFiles(db, {
        ingestionId: ingestion.id,
        runId: run.id,
        files: listing(0, 1, etag),
        modifiedPolicy: policy,
      });
    const { created } = await register("e1", "ignore");
    const file = created[0]!;
    await claimFiles(db, { refs: [file], worker: "w", leaseMs: 60_000 });
    await recordOutcomes(db, { worker: "w", outcomes: [{ ...file, status: "SUCCESS" }] });
    // Two changes the ignore policy recorded and did not act on: versions 2 and 3, SKIPPED.
    await register("e2", "ignore");
    await register("e3", "ignore");
    expect((await fileHistory(db, file.id)).versions.map((v) => v.version)).toEqual([1, 2, 3]);

    const window = await prunableRows(db, { table: "file_versions", before: future() });
    expect(window.keys).toEqual([`${file.id}/1`, `${file.id}/2`]);
    expect(
      await deletePrunedRows(db, { table: "file_versions", before: future(), keys: window.keys }),
    ).toEqual({
      file_versions: 2,
      source_cleanups: 0,
    });
    // The same listing again is no change; a new change is version 4.
    expect(await register("e3", "ignore")).toEqual({ created: [], modified: [], refused: [], known: [] });
    expect(await register("e4", "append")).toMatchObject({ modified: [{ id: file.id, version: 4 }] });
  });

  it("reads the current version from the file row: a file with only earlier history left is not changed", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db);
    const register = (etag: string) =>
      registerFiles(db, {
        ingestionId: ingestion.id,
        runId: run.id,
        files: listing(0, 1, etag),
        modifiedPolicy: "append",
      });
    const [file] = (await register("e1")).created;
    const [second] = (await register("e2")).modified;
    if (!file || !second) throw new Error("not registered");
    await claimFiles(db, { refs: [second], worker: "w", leaseMs: 60_000 });
    await recordOutcomes(db, { worker: "w", outcomes: [{ ...second, status: "SUCCESS" }] });
    // Only the current version's history row goes (as if a prune stopped half-way through the file's rows).
    expect(
      await deletePrunedRows(db, { table: "file_versions", before: future(), keys: [`${file.id}/2`] }),
    ).toEqual({
      file_versions: 1,
      source_cleanups: 0,
    });
    expect((await fileHistory(db, file.id)).versions.map((v) => v.version)).toEqual([1]);
    expect(await register("e2")).toEqual({ created: [], modified: [], refused: [], known: [] });
  });

  it("keeps a committed batch whose source objects the ingestion's cleanSource has yet to clean", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db);
    const { created } = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: listing(0, 1),
      modifiedPolicy: "ignore",
    });
    const file = created[0]!;
    await claimFiles(db, { refs: [file], worker: "w", leaseMs: 60_000 });
    const batchId = randomUUID();
    await openBatch(db, {
      batchId,
      ingestionId: ingestion.id,
      table: "lake.db.orders",
      worker: "w",
      files: [file],
      ingestedAtMicros: 1n,
    });
    await beginPublish(db, {
      batchId,
      worker: "w",
      stagedSnapshotId: "1",
      records: [{ fileId: file.id, records: 1 }],
      publishLeaseMs: 60_000,
    });
    await recordOutcomes(db, {
      worker: "w",
      outcomes: [{ ...file, status: "SUCCESS", batchId }],
      batch: { id: batchId, state: "COMMITTED", snapshotId: "1" },
    });
    const cleanup = { mode: "move", moveTo: "s3://landing/archive/", retentionMs: 1, schedule: "0 * * * *" };
    await db.pool.query(`UPDATE ingestions SET clean_source = $2::jsonb WHERE id = $1`, [
      ingestion.id,
      JSON.stringify(cleanup),
    ]);
    const prunable = async () => (await prunableRows(db, { table: "write_batches", before: future() })).keys;
    expect(await prunable()).toEqual([]);
    // Once its sources are cleaned (or cleanup is turned off) it may go.
    await db.pool.query(`UPDATE write_batches SET sources_cleaned_at = now() WHERE id = $1`, [batchId]);
    expect(await prunable()).toEqual([batchId]);

    // The version's cleanup record goes with the version once the cleanup is done; one still failing stays.
    const recordCleanup = (cleanedAt: string | null) =>
      db.pool.query(
        `INSERT INTO source_cleanups (file_id, version, batch_id, action, cleaned_at, attempts)
         VALUES ($1, 1, $2, $3, $4::timestamptz, 1)
         ON CONFLICT (file_id, version) DO UPDATE SET action = EXCLUDED.action, cleaned_at = EXCLUDED.cleaned_at`,
        [file.id, batchId, cleanedAt === null ? null : "moved", cleanedAt],
      );
    await recordCleanup(null);
    let versions = await prunableRows(db, { table: "file_versions", before: future() });
    expect(versions.rows.map((row) => row.table)).toEqual(["file_versions"]);
    await recordCleanup(new Date().toISOString());
    versions = await prunableRows(db, { table: "file_versions", before: future() });
    expect(versions.rows.map((row) => [row.table, row.key])).toEqual([
      ["file_versions", `${file.id}/1`],
      ["source_cleanups", `${file.id}/1`],
    ]);
    expect(JSON.parse(versions.rows[1]!.row)).toMatchObject({ action: "moved", batch_id: batchId });
    expect(
      await deletePrunedRows(db, { table: "file_versions", before: future(), keys: versions.keys }),
    ).toEqual({ file_versions: 1, source_cleanups: 1 });
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM source_cleanups`);
    expect(rows[0]).toEqual({ n: 0 });
  });

  it("keeps a row that came back into use after it was read: a retried file's attempts", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db);
    const { created } = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: listing(0, 1),
      modifiedPolicy: "ignore",
    });
    const file = created[0]!;
    await claimFiles(db, { refs: [file], worker: "w", leaseMs: 60_000 });
    await recordOutcomes(db, { worker: "w", outcomes: [{ ...file, status: "FAILED", errorType: "X" }] });
    const window = await prunableRows(db, { table: "file_attempts", before: future() });
    expect(window.keys).toHaveLength(1);
    // Retried (lakeferry retry) between the archive and the delete: PENDING again at the same version.
    await db.pool.query(`UPDATE processed_files SET status = 'PENDING' WHERE id = $1`, [file.id]);
    expect(
      await deletePrunedRows(db, { table: "file_attempts", before: future(), keys: window.keys }),
    ).toEqual({
      file_attempts: 0,
    });
    // Nothing is old before its cutoff.
    expect((await prunableRows(db, { table: "runs", before: new Date(0) })).keys).toEqual([]);
  });

  it("keeps a committed batch while a member at it is unsettled (its bookkeeping cut short), then prunes it", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db);
    const { created } = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: listing(0, 2),
      modifiedPolicy: "ignore",
    });
    await claimFiles(db, { refs: created, worker: "w", leaseMs: 60_000 });
    const batchId = randomUUID();
    await openBatch(db, {
      batchId,
      ingestionId: ingestion.id,
      table: "lake.db.orders",
      worker: "w",
      files: created,
      ingestedAtMicros: 1n,
    });
    const records = created.map((f) => ({ fileId: f.id, records: 1 }));
    expect(
      await beginPublish(db, {
        batchId,
        worker: "w",
        stagedSnapshotId: "7",
        records,
        publishLeaseMs: 60_000,
      }),
    ).toBe(true);
    // Published and recorded COMMITTED, but the writer died before settling its files.
    await recordOutcomes(db, {
      worker: "w",
      outcomes: [],
      batch: { id: batchId, state: "COMMITTED", snapshotId: "7" },
    });
    const batches = () => prunableRows(db, { table: "write_batches", before: future() });
    expect((await batches()).keys).toEqual([]);
    await recordOutcomes(db, { worker: "w", outcomes: created.map((f) => ({ ...f, status: "SUCCESS" })) });
    const window = await batches();
    expect(window.keys).toEqual([batchId]);
    expect(window.rows.map((row) => [row.table, row.key])).toEqual([
      ["write_batches", batchId],
      ...created.map((f) => ["write_batch_files", `${batchId}/${f.id}`]),
    ]);
  });
});
