import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  claimFiles,
  fileHistory,
  firstAttemptFiles,
  getFile,
  openBatch,
  reclaimExpiredLeases,
  registerFiles,
  renewLeases,
  unresolvedBatches,
  type ClaimedFile,
  type Database,
  type FileRef,
} from "../src/index.ts";
import {
  eventually,
  freshDatabase,
  listing,
  newIngestion,
  raceBehindLock,
  secondConnection,
} from "./helpers.ts";

async function registered(db: Database, count: number): Promise<{ ingestionId: number; refs: FileRef[] }> {
  const { ingestion, run } = await newIngestion(db);
  const { created } = await registerFiles(db, {
    ingestionId: ingestion.id,
    runId: run.id,
    files: listing(0, count),
    modifiedPolicy: "ignore",
  });
  return { ingestionId: ingestion.id, refs: created };
}

const shuffle = <T>(items: T[]): T[] => [...items].sort(() => Math.random() - 0.5);

describe("claimFiles", () => {
  it("gives each file to exactly one of two pools claiming the same files at the same moment", async () => {
    const db = await freshDatabase();
    const a = secondConnection(db);
    const b = secondConnection(db);
    const { refs } = await registered(db, 120);
    // Both claimers read the files as PENDING before either may lock one.
    const claims = await raceBehindLock(
      db,
      `SELECT id FROM processed_files ORDER BY id FOR UPDATE`,
      () => [
        claimFiles(a, { refs: shuffle(refs), worker: "worker-a", leaseMs: 60_000 }),
        claimFiles(b, { refs: shuffle(refs), worker: "worker-b", leaseMs: 60_000 }),
        claimFiles(b, { refs: refs.slice(0, 60), worker: "worker-c", leaseMs: 60_000 }),
      ],
      3,
    );
    const all = claims.flat();
    expect(all).toHaveLength(120);
    expect(new Set(all.map((c) => c.id)).size).toBe(120);
    expect(all.every((c) => c.attempt === 1)).toBe(true);
    for (const claim of claims)
      expect(claim.map((c) => c.id)).toEqual([...claim.map((c) => c.id)].sort((x, y) => x - y));

    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS attempts, count(DISTINCT file_id)::int AS files FROM file_attempts`,
    );
    expect(rows[0]).toEqual({ attempts: 120, files: 120 });
    const owners = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM processed_files WHERE status = 'PROCESSING' AND lease_owner IS NOT NULL`,
    );
    expect(owners.rows[0]!.n).toBe(120);
  });

  it("stays exclusive under unsynchronised racing too", async () => {
    const db = await freshDatabase();
    const a = secondConnection(db);
    const { refs } = await registered(db, 200);
    const batches = [0, 1, 2, 3].map(() => shuffle(refs).slice(0, 150));
    const claims = await Promise.all(
      batches.map((batch, i) =>
        claimFiles(i % 2 ? a : db, { refs: batch, worker: `w${i}`, leaseMs: 60_000 }),
      ),
    );
    const ids = claims.flat().map((c) => c.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("claims only PENDING files at the requested version, and records the attempt", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 3);
    const [f0, f1, f2] = refs as [FileRef, FileRef, FileRef];
    const claimed = await claimFiles(db, {
      refs: [f1, { id: f2.id, version: 2 }, { id: 999_999, version: 1 }],
      worker: "w1",
      leaseMs: 60_000,
    });
    expect(claimed).toEqual<ClaimedFile[]>([
      { id: f1.id, ingestionId, version: 1, path: f1.path, size: 101, attempt: 1, previousBatchId: null },
    ]);
    expect(await claimFiles(db, { refs: [f1, f0], worker: "w2", leaseMs: 60_000 })).toMatchObject([
      { id: f0.id },
    ]);
    const file = await getFile(db, ingestionId, f1.path);
    expect(file).toMatchObject({ status: "PROCESSING", leaseOwner: "w1", attempts: 1 });
    expect(file!.leaseExpiresAt!.getTime() - file!.processingStartedAt!.getTime()).toBe(60_000);
    expect((await fileHistory(db, f1.id)).attempts).toMatchObject([
      { version: 1, attempt: 1, worker: "w1", outcome: null, finishedAt: null },
    ]);
  });

  it("lets another worker take over an expired lease; the first loses it and its attempt is LOST", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 1);
    const ref = refs[0]!;
    await claimFiles(db, { refs: [ref], worker: "slow", leaseMs: 60_000 });
    expect(await claimFiles(db, { refs: [ref], worker: "eager", leaseMs: 60_000 })).toEqual([]);
    // The slow worker still holds it; its last renewal is short, and then it goes quiet.
    expect(await renewLeases(db, { worker: "slow", fileIds: [ref.id], leaseMs: 300 })).toEqual([ref.id]);

    const takeover = await eventually(
      "the lease to expire",
      async () => {
        const claimed = await claimFiles(db, { refs: [ref], worker: "eager", leaseMs: 60_000 });
        return claimed.length ? claimed : undefined;
      },
      15_000,
    );
    expect(takeover).toMatchObject([{ id: ref.id, attempt: 2 }]);
    expect(await renewLeases(db, { worker: "slow", fileIds: [ref.id], leaseMs: 60_000 })).toEqual([]);
    expect(await renewLeases(db, { worker: "eager", fileIds: [ref.id], leaseMs: 60_000 })).toEqual([ref.id]);
    expect(await getFile(db, ingestionId, ref.path)).toMatchObject({ leaseOwner: "eager", attempts: 2 });
    const { attempts } = await fileHistory(db, ref.id);
    expect(attempts.map((a) => [a.attempt, a.worker, a.outcome, a.errorType])).toEqual([
      [1, "slow", "LOST", "LEASE_EXPIRED"],
      [2, "eager", null, null],
    ]);
  });
});

describe("firstAttemptFiles", () => {
  it("lists an ingestion's never-claimed PENDING files oldest first, within the file and byte limits", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 6);
    const other = await registered(db, 2);
    await claimFiles(db, { refs: [refs[1]!], worker: "w1", leaseMs: 60_000 });
    const ids = (files: { id: number }[]): number[] => files.map((file) => file.id);
    const all = await firstAttemptFiles(db, {
      ingestionId,
      limit: 10,
      maxBytes: 10_000,
      firstVersionOnly: false,
    });
    expect(ids(all)).toEqual([refs[0]!, ...refs.slice(2)].map((ref) => ref.id));
    expect(all[0]).toEqual({ id: refs[0]!.id, version: 1, size: 100 });
    const two = await firstAttemptFiles(db, {
      ingestionId,
      limit: 2,
      maxBytes: 10_000,
      firstVersionOnly: false,
    });
    expect(ids(two)).toEqual([refs[0]!.id, refs[2]!.id]);
    // Sizes 100, 102, 103…: the byte limit stops the list (a file that alone is too big is not listed).
    const bytes = await firstAttemptFiles(db, {
      ingestionId,
      limit: 10,
      maxBytes: 205,
      firstVersionOnly: false,
    });
    expect(ids(bytes)).toEqual([refs[0]!.id, refs[2]!.id]);
    expect(
      ids(await firstAttemptFiles(db, { ingestionId, limit: 10, maxBytes: 101, firstVersionOnly: true })),
    ).toEqual([refs[0]!.id]);
    // Another ingestion's files never appear.
    expect(all.some((file) => other.refs.some((ref) => ref.id === file.id))).toBe(false);
  });
});

describe("reclaimExpiredLeases", () => {
  it("returns expired files to PENDING unless they are in an OPEN batch, which recovery resolves first", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 4);
    const [loose, batched, live, done] = refs as [FileRef, FileRef, FileRef, FileRef];
    await claimFiles(db, { refs: [loose, batched, done], worker: "w1", leaseMs: 60_000 });
    await claimFiles(db, { refs: [live], worker: "w2", leaseMs: 60_000 });
    const batchId = randomUUID();
    await openBatch(db, {
      batchId,
      ingestionId,
      table: "lake.db.orders",
      worker: "w1",
      files: [batched],
      ingestedAtMicros: 1_700_000_000_000_000n,
    });
    // The worker died: its leases run out (set in the past rather than waited for).
    await db.pool.query(
      `UPDATE processed_files SET lease_expires_at = now() - interval '1 second' WHERE lease_owner = 'w1'`,
    );
    await db.pool.query(`UPDATE processed_files SET status = 'SUCCESS', lease_owner = NULL WHERE id = $1`, [
      done.id,
    ]);

    const reclaimed = await reclaimExpiredLeases(db);
    expect(reclaimed).toEqual([{ id: loose.id, version: 1, path: loose.path, ingestionId }]);
    expect(await reclaimExpiredLeases(db)).toEqual([]);
    expect(await getFile(db, ingestionId, loose.path)).toMatchObject({
      status: "PENDING",
      leaseOwner: null,
      leaseExpiresAt: null,
    });
    expect((await fileHistory(db, loose.id)).attempts).toMatchObject([
      { outcome: "LOST", errorType: "LEASE_EXPIRED" },
    ]);
    expect(await getFile(db, ingestionId, batched.path)).toMatchObject({ status: "PROCESSING", batchId });
    expect(await getFile(db, ingestionId, live.path)).toMatchObject({
      status: "PROCESSING",
      leaseOwner: "w2",
    });

    // The reconciler sees the batch; a new claimer is told to look for it before writing again.
    const open = await unresolvedBatches(db, { olderThanMs: 0 });
    expect(open).toMatchObject([
      {
        id: batchId,
        ingestionId,
        table: "lake.db.orders",
        worker: "w1",
        files: [{ id: batched.id, version: 1 }],
      },
    ]);
    expect(await unresolvedBatches(db, { olderThanMs: 3_600_000 })).toEqual([]);
    expect(await claimFiles(db, { refs: [batched], worker: "w3", leaseMs: 60_000 })).toMatchObject([
      { id: batched.id, attempt: 2, previousBatchId: batchId },
    ]);
  });
});
