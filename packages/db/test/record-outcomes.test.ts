import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  beginPublish,
  claimFiles,
  fileHistory,
  getFile,
  openBatch,
  recordOutcomes,
  registerFiles,
  STALE_OUTCOME,
  type Database,
  type FileRef,
} from "../src/index.ts";
import { blockedBehind, eventually, freshDatabase, listing, newIngestion } from "./helpers.ts";

async function claimedFiles(
  db: Database,
  count: number,
  worker = "w1",
): Promise<{ ingestionId: number; refs: FileRef[] }> {
  const { ingestion, run } = await newIngestion(db);
  const { created } = await registerFiles(db, {
    ingestionId: ingestion.id,
    runId: run.id,
    files: listing(0, count),
    modifiedPolicy: "ignore",
  });
  await claimFiles(db, { refs: created, worker, leaseMs: 60_000 });
  return { ingestionId: ingestion.id, refs: created };
}

const INGESTED_AT_MICROS = 1_700_000_000_000_000n;

/** Opens a batch of `refs` held by `worker`. */
async function openedBatch(
  db: Database,
  ingestionId: number,
  refs: FileRef[],
  worker: string,
): Promise<string> {
  const batchId = randomUUID();
  await openBatch(db, {
    batchId,
    ingestionId,
    table: "lake.db.orders",
    worker,
    files: refs,
    ingestedAtMicros: INGESTED_AT_MICROS,
  });
  return batchId;
}

/** Moves `worker`'s OPEN batch to PUBLISHING, the only way to a batch that can be recorded COMMITTED. */
async function decided(db: Database, batchId: string, refs: FileRef[], worker: string): Promise<void> {
  const won = await beginPublish(db, {
    batchId,
    worker,
    stagedSnapshotId: "1",
    records: refs.map((r) => ({ fileId: r.id, records: 1 })),
    publishLeaseMs: 60_000,
  });
  expect(won).toBe(true);
}

async function batchState(
  db: Database,
  id: string,
): Promise<{ state: string; snapshot_id: string | null; error_message: string | null }> {
  const { rows } = await db.pool.query<{
    state: string;
    snapshot_id: string | null;
    error_message: string | null;
  }>(`SELECT state, snapshot_id, error_message, resolved_at FROM write_batches WHERE id = $1`, [id]);
  return rows[0]!;
}

describe("recordOutcomes", () => {
  it("settles a committed batch's files, each with its own fate, in one transaction", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await claimedFiles(db, 3);
    const [good, corrupt, flaky] = refs as [FileRef, FileRef, FileRef];
    const batchId = await openedBatch(db, ingestionId, refs, "w1");
    await decided(db, batchId, refs, "w1");
    const snapshotId = "8219872364523019876"; // beyond 2^53: must survive exactly
    const result = await recordOutcomes(db, {
      worker: "w1",
      outcomes: [
        { id: good.id, version: 1, status: "SUCCESS", recordsIngested: 42, bytesRead: 1000 },
        {
          id: corrupt.id,
          version: 1,
          status: "FAILED",
          errorType: "MALFORMED_FILE",
          errorMessage: "line 3: bad quote",
        },
        {
          id: flaky.id,
          version: 1,
          status: "PENDING",
          errorType: "SPARK_UNAVAILABLE",
          errorMessage: "connection refused",
        },
      ],
      batch: { id: batchId, state: "COMMITTED", snapshotId },
    });
    expect(result.applied).toEqual([good.id, corrupt.id, flaky.id].sort((a, b) => a - b));

    expect(await getFile(db, ingestionId, good.path)).toMatchObject({
      status: "SUCCESS",
      recordsIngested: 42,
      bytesRead: 1000,
      snapshotId,
      batchId,
      retryCount: 0,
      leaseOwner: null,
      leaseExpiresAt: null,
      errorType: null,
    });
    const goodFile = (await getFile(db, ingestionId, good.path))!;
    expect(goodFile.processedAt).toBeInstanceOf(Date);
    expect(goodFile.processingDurationMs).toBeGreaterThanOrEqual(0);
    expect(await getFile(db, ingestionId, corrupt.path)).toMatchObject({
      status: "FAILED",
      errorType: "MALFORMED_FILE",
      errorMessage: "line 3: bad quote",
      retryCount: 1,
      snapshotId: null,
    });
    expect(await getFile(db, ingestionId, flaky.path)).toMatchObject({
      status: "PENDING",
      retryCount: 1,
      errorType: "SPARK_UNAVAILABLE",
      processedAt: null,
    });

    const history = await fileHistory(db, good.id);
    expect(history.versions).toMatchObject([
      { version: 1, status: "SUCCESS", recordsIngested: 42, snapshotId, batchId },
    ]);
    expect(history.attempts).toMatchObject([
      { attempt: 1, outcome: "SUCCESS", recordsIngested: 42, batchId },
    ]);
    expect(history.attempts[0]!.durationMs).toBeGreaterThanOrEqual(0);
    expect((await fileHistory(db, corrupt.id)).attempts).toMatchObject([
      { outcome: "FAILED", errorType: "MALFORMED_FILE" },
    ]);
    expect((await fileHistory(db, corrupt.id)).versions).toMatchObject([
      { status: "FAILED", errorMessage: "line 3: bad quote" },
    ]);
    expect((await fileHistory(db, flaky.id)).attempts).toMatchObject([
      { outcome: "RETRY", errorType: "SPARK_UNAVAILABLE" },
    ]);
    expect(await batchState(db, batchId)).toMatchObject({ state: "COMMITTED", snapshot_id: snapshotId });

    // The retried file is claimable again, as attempt 2.
    expect(await claimFiles(db, { refs: [flaky], worker: "w2", leaseMs: 60_000 })).toMatchObject([
      { id: flaky.id, attempt: 2 },
    ]);
  });

  it("ignores a worker that lost its lease, and an outcome for another version", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await claimedFiles(db, 2, "stale");
    const [taken, other] = refs as [FileRef, FileRef];
    await db.pool.query(
      `UPDATE processed_files SET lease_expires_at = now() - interval '1 second' WHERE id = $1`,
      [taken.id],
    );
    await claimFiles(db, { refs: [taken], worker: "fresh", leaseMs: 60_000 });

    const stale = await recordOutcomes(db, {
      worker: "stale",
      outcomes: [
        { id: taken.id, version: 1, status: "SUCCESS", recordsIngested: 1 },
        { id: other.id, version: 7, status: "SUCCESS", recordsIngested: 1 },
      ],
    });
    expect(stale.applied).toEqual([]);
    expect(await getFile(db, ingestionId, taken.path)).toMatchObject({
      status: "PROCESSING",
      leaseOwner: "fresh",
      recordsIngested: null,
    });
    expect(await getFile(db, ingestionId, other.path)).toMatchObject({
      status: "PROCESSING",
      leaseOwner: "stale",
      version: 1,
    });
    expect((await fileHistory(db, taken.id)).attempts.map((a) => [a.worker, a.outcome, a.errorType])).toEqual(
      [
        ["stale", "LOST", "LEASE_EXPIRED"],
        ["fresh", null, null],
      ],
    );

    const fresh = await recordOutcomes(db, {
      worker: "fresh",
      outcomes: [{ id: taken.id, version: 1, status: "SUCCESS", recordsIngested: 9 }],
    });
    expect(fresh.applied).toEqual([taken.id]);
    expect(await getFile(db, ingestionId, taken.path)).toMatchObject({
      status: "SUCCESS",
      recordsIngested: 9,
    });
    // Recording the same outcome twice changes nothing the second time.
    expect(
      (
        await recordOutcomes(db, {
          worker: "fresh",
          outcomes: [{ id: taken.id, version: 1, status: "FAILED" }],
        })
      ).applied,
    ).toEqual([]);
  });

  it("lets the reconciler (worker null) settle a batch it found committed, whoever held the files", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await claimedFiles(db, 2, "crashed");
    const batchId = await openedBatch(db, ingestionId, refs, "crashed");
    // It decided the batch, published it and died before recording it.
    await decided(db, batchId, refs, "crashed");
    const result = await recordOutcomes(db, {
      worker: null,
      outcomes: refs.map((r) => ({ id: r.id, version: r.version, status: "SUCCESS" as const })),
      batch: { id: batchId, state: "COMMITTED", snapshotId: "77" },
    });
    expect(result.applied).toEqual(refs.map((r) => r.id));
    for (const ref of refs) {
      expect(await getFile(db, ingestionId, ref.path)).toMatchObject({
        status: "SUCCESS",
        snapshotId: "77",
        batchId,
        leaseOwner: null,
      });
    }
    expect(await batchState(db, batchId)).toMatchObject({ state: "COMMITTED", snapshot_id: "77" });

    // A batch already resolved is not resolved again.
    await recordOutcomes(db, {
      worker: null,
      outcomes: [],
      batch: { id: batchId, state: "ABANDONED", errorMessage: "late" },
    });
    expect(await batchState(db, batchId)).toMatchObject({ state: "COMMITTED", error_message: null });
  });

  it("records a failed batch and hands its files back for retry", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await claimedFiles(db, 2);
    const batchId = await openedBatch(db, ingestionId, refs, "w1");
    await recordOutcomes(db, {
      worker: "w1",
      outcomes: refs.map((r) => ({
        id: r.id,
        version: 1,
        status: "PENDING" as const,
        errorType: "SPARK_UNAVAILABLE",
        errorMessage: "down",
      })),
      batch: { id: batchId, state: "FAILED", errorMessage: "commit failed: down" },
    });
    expect(await batchState(db, batchId)).toMatchObject({
      state: "FAILED",
      error_message: "commit failed: down",
    });
    // The failed batch cannot have written anything, so the next claim need not look for it.
    expect(await claimFiles(db, { refs, worker: "w2", leaseMs: 60_000 })).toMatchObject([
      { attempt: 2, previousBatchId: null },
      { attempt: 2, previousBatchId: null },
    ]);
  });

  it("refuses outcomes recorded with a COMMITTED batch that is not decided, and gives up only on an OPEN batch", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await claimedFiles(db, 2, "w1");
    const batchId = await openedBatch(db, ingestionId, refs, "w1");
    const succeeded = refs.map((r) => ({ id: r.id, version: r.version, status: "SUCCESS" as const }));

    for (const id of [batchId, randomUUID()]) {
      const { applied } = await recordOutcomes(db, {
        worker: null,
        outcomes: succeeded,
        batch: { id, state: "COMMITTED", snapshotId: "5" },
      });
      expect(applied).toEqual([]);
    }
    for (const ref of refs) {
      expect(await getFile(db, ingestionId, ref.path)).toMatchObject({
        status: "PROCESSING",
        leaseOwner: "w1",
        snapshotId: null,
      });
      expect((await fileHistory(db, ref.id)).attempts).toMatchObject([{ attempt: 1, outcome: null }]);
    }
    expect(await batchState(db, batchId)).toMatchObject({ state: "OPEN", snapshot_id: null });

    // Once decided, the batch is no longer OPEN to give up on.
    await decided(db, batchId, refs, "w1");
    await recordOutcomes(db, {
      worker: null,
      outcomes: [],
      batch: { id: batchId, state: "ABANDONED", errorMessage: "late" },
    });
    expect(await batchState(db, batchId)).toMatchObject({ state: "PUBLISHING", error_message: null });
  });

  it("turns a file its writer gave up on SUCCESS when recovery finds its batch committed, and the writing attempt with it", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await claimedFiles(db, 3, "w1");
    const [failed, retried, elsewhere] = refs as [FileRef, FileRef, FileRef];
    const batchId = await openedBatch(db, ingestionId, [failed, retried], "w1");
    await decided(db, batchId, [failed, retried], "w1");
    // The batch was published, but its writer saw an error and gave up on both files; a third file failed
    // on its own, outside the batch.
    await recordOutcomes(db, {
      worker: "w1",
      outcomes: [
        {
          id: failed.id,
          version: 1,
          status: "FAILED",
          errorType: "SPARK_EXECUTION",
          errorMessage: "lost",
          batchId,
        },
        {
          id: retried.id,
          version: 1,
          status: "PENDING",
          errorType: "SPARK_EXECUTION",
          errorMessage: "lost",
          batchId,
        },
        { id: elsewhere.id, version: 1, status: "FAILED", errorType: "MALFORMED_FILE", errorMessage: "bad" },
      ],
    });
    // Another worker claimed the retried file before recovery found the batch committed.
    await claimFiles(db, { refs: [retried], worker: "w2", leaseMs: 60_000 });

    const { applied } = await recordOutcomes(db, {
      worker: null,
      outcomes: refs.map((r) => ({ id: r.id, version: 1, status: "SUCCESS" as const, recordsIngested: 5 })),
      batch: { id: batchId, state: "COMMITTED", snapshotId: "99" },
    });
    expect(applied).toEqual([failed.id, retried.id]);

    expect(await getFile(db, ingestionId, failed.path)).toMatchObject({
      status: "SUCCESS",
      snapshotId: "99",
      batchId,
      errorType: null,
      errorMessage: null,
      retryCount: 1,
    });
    const failedHistory = await fileHistory(db, failed.id);
    expect(failedHistory.attempts).toMatchObject([
      {
        attempt: 1,
        worker: "w1",
        outcome: "SUCCESS",
        errorType: null,
        errorMessage: null,
        recordsIngested: 5,
      },
    ]);
    expect(failedHistory.versions).toMatchObject([{ status: "SUCCESS", snapshotId: "99", errorType: null }]);
    expect(await getFile(db, ingestionId, retried.path)).toMatchObject({
      status: "SUCCESS",
      leaseOwner: null,
    });
    expect((await fileHistory(db, retried.id)).attempts).toMatchObject([
      { attempt: 1, worker: "w1", outcome: "SUCCESS", errorType: null, batchId },
      { attempt: 2, worker: "w2", outcome: "SUCCESS", batchId },
    ]);
    // Not written in the batch: a SUCCESS in its name does not apply.
    expect(await getFile(db, ingestionId, elsewhere.path)).toMatchObject({
      status: "FAILED",
      errorType: "MALFORMED_FILE",
      snapshotId: null,
    });
    expect((await fileHistory(db, elsewhere.id)).attempts).toMatchObject([{ outcome: "FAILED" }]);
    expect(await batchState(db, batchId)).toMatchObject({ state: "COMMITTED", snapshot_id: "99" });
  });

  it("closes a worker's open attempt as LOST when its outcome no longer applies, but not a claim the worker made meanwhile", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await claimedFiles(db, 2, "w1");
    const [stale, held] = refs as [FileRef, FileRef];
    // The worker no longer holds `stale`, but its attempt was left open: what the stale step is for.
    await db.pool.query(
      `UPDATE processed_files SET status = 'PENDING', lease_owner = NULL, lease_expires_at = NULL WHERE id = $1`,
      [stale.id],
    );

    // Hold the recording back between its lock and its last steps (closing the held file's attempt waits
    // on this row lock), and let the worker claim `stale` again meanwhile.
    const blocker = await db.pool.connect();
    try {
      await blocker.query("BEGIN");
      await blocker.query("SELECT 1 FROM file_attempts WHERE file_id = $1 FOR UPDATE", [held.id]);
      const { rows } = await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      const pid = rows[0]!.pid;
      const recording = recordOutcomes(db, {
        worker: "w1",
        outcomes: [
          { id: stale.id, version: 1, status: "SUCCESS", recordsIngested: 1 },
          { id: held.id, version: 1, status: "SUCCESS", recordsIngested: 1 },
        ],
      });
      recording.catch(() => undefined);
      await eventually("the recording waits on the held file's attempt", async () =>
        (await blockedBehind(db, pid)) >= 1 ? true : undefined,
      );
      expect(await claimFiles(db, { refs: [stale], worker: "w1", leaseMs: 60_000 })).toMatchObject([
        { id: stale.id, attempt: 2 },
      ]);
      await blocker.query("COMMIT");
      expect((await recording).applied).toEqual([held.id]);
    } finally {
      blocker.release();
    }

    expect((await fileHistory(db, stale.id)).attempts).toMatchObject([
      {
        attempt: 1,
        worker: "w1",
        outcome: "LOST",
        errorType: STALE_OUTCOME,
        errorMessage: "the outcome (SUCCESS) arrived after the lease was lost or the file changed",
      },
      { attempt: 2, worker: "w1", outcome: null, finishedAt: null },
    ]);
    expect(await getFile(db, ingestionId, stale.path)).toMatchObject({
      status: "PROCESSING",
      leaseOwner: "w1",
      recordsIngested: null,
    });
    expect(await getFile(db, ingestionId, held.path)).toMatchObject({
      status: "SUCCESS",
      recordsIngested: 1,
    });
  });
});
