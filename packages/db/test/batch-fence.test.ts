import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  abandonBatch,
  beginPublish,
  claimFiles,
  fileIdentities,
  getFile,
  openBatch,
  readBatch,
  reclaimExpiredLeases,
  recordOutcomes,
  registerFiles,
  renewLeases,
  unresolvedBatches,
  type BatchRecord,
  type ClaimedFile,
  type Database,
  type FileRef,
  type ModifiedPolicy,
} from "../src/index.ts";
import {
  blockedBehind,
  eventually,
  freshDatabase,
  listing,
  newIngestion,
  secondConnection,
} from "./helpers.ts";

const TABLE = "lake.db.orders";
const MARKER = 1_700_000_000_000_000n;
/** Beyond 2^53: must survive exactly. */
const STAGED = "8219872364523019876";

async function registered(
  db: Database,
  count: number,
  modifiedPolicy: ModifiedPolicy = "ignore",
): Promise<{ ingestionId: number; runId: number; refs: FileRef[] }> {
  const { ingestion, run } = await newIngestion(db, { modifiedPolicy });
  const { created } = await registerFiles(db, {
    ingestionId: ingestion.id,
    runId: run.id,
    files: listing(0, count),
    modifiedPolicy,
  });
  return { ingestionId: ingestion.id, runId: run.id, refs: created };
}

/** `worker` claims `refs` and opens a batch of them, as a writer does before staging its snapshot. */
async function heldBatch(
  db: Database,
  ingestionId: number,
  refs: FileRef[],
  worker = "w1",
  leaseMs = 60_000,
): Promise<string> {
  expect(await claimFiles(db, { refs, worker, leaseMs })).toHaveLength(refs.length);
  const batchId = randomUUID();
  await openBatch(db, { batchId, ingestionId, table: TABLE, worker, files: refs, ingestedAtMicros: MARKER });
  return batchId;
}

/** Member i wrote 10 * (i + 1) rows. */
function publish(
  db: Database,
  batchId: string,
  members: FileRef[],
  options: { worker?: string; stagedSnapshotId?: string; publishLeaseMs?: number } = {},
): Promise<boolean> {
  return beginPublish(db, {
    batchId,
    worker: options.worker ?? "w1",
    stagedSnapshotId: options.stagedSnapshotId ?? STAGED,
    records: members.map((m, i) => ({ fileId: m.id, records: 10 * (i + 1) })),
    publishLeaseMs: options.publishLeaseMs ?? 60_000,
  });
}

async function expireLease(db: Database, fileId: number): Promise<void> {
  await db.pool.query(
    `UPDATE processed_files SET lease_expires_at = now() - interval '1 second' WHERE id = $1`,
    [fileId],
  );
}

/** The batch, which the test knows exists. */
async function batchOf(db: Database, batchId: string): Promise<BatchRecord> {
  const batch = await readBatch(db, batchId);
  if (!batch) throw new Error(`no batch ${batchId}`);
  return batch;
}

async function batchRow(
  db: Database,
  batchId: string,
): Promise<{
  state: string;
  error_message: string | null;
  resolved_at: Date | null;
  snapshot_id: string | null;
}> {
  const { rows } = await db.pool.query<{
    state: string;
    error_message: string | null;
    resolved_at: Date | null;
    snapshot_id: string | null;
  }>(`SELECT state, error_message, resolved_at, snapshot_id::text FROM write_batches WHERE id = $1`, [
    batchId,
  ]);
  return rows[0]!;
}

/** Each file's lease: owner and exact expiry (as text, microseconds), and ms left by the database clock. */
async function leases(
  db: Database,
  refs: FileRef[],
): Promise<{ id: number; owner: string | null; expires: string | null; msLeft: number | null }[]> {
  const { rows } = await db.pool.query<{
    id: string;
    owner: string | null;
    expires: string | null;
    ms_left: number | null;
  }>(
    `SELECT id, lease_owner AS owner, lease_expires_at::text AS expires,
            (extract(epoch FROM lease_expires_at - now()) * 1000)::float8 AS ms_left
     FROM processed_files WHERE id = ANY($1::bigint[]) ORDER BY id`,
    [refs.map((r) => r.id)],
  );
  return rows.map((r) => ({ id: Number(r.id), owner: r.owner, expires: r.expires, msLeft: r.ms_left }));
}

/** Who holds each lease until exactly when: equal before and after means no lease changed. */
const held = (ls: { id: number; owner: string | null; expires: string | null }[]) =>
  ls.map((l) => [l.id, l.owner, l.expires]);

/**
 * Makes an interleaving deterministic: holds the row locks `lockSql` takes in an open transaction, starts
 * each contender only once the previous one is blocked behind it (so every contender has read its snapshot
 * before any can go, and they get the rows in this order), then commits and lets them all go.
 */
async function inLockOrder<T>(
  db: Database,
  lock: { sql: string; params: unknown[] },
  contenders: (() => Promise<T>)[],
): Promise<T[]> {
  const client = await db.pool.connect();
  try {
    await client.query("BEGIN");
    await client.query(lock.sql, lock.params);
    const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    const pid = rows[0]!.pid;
    const started: Promise<T>[] = [];
    for (const contender of contenders) {
      const running = contender();
      running.catch(() => undefined);
      started.push(running);
      await eventually(
        `${started.length} backends blocked behind pid ${pid}`,
        async () => {
          return (await blockedBehind(db, pid)) >= started.length ? true : undefined;
        },
        30_000,
      );
    }
    await client.query("COMMIT");
    return await Promise.all(started);
  } finally {
    client.release();
  }
}

describe("beginPublish (the commit fence)", () => {
  it("moves the holder's OPEN batch to PUBLISHING once, with its staged snapshot and rows, and extends the leases", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 3);
    const batchId = await heldBatch(db, ingestionId, refs, "w1", 30_000);
    expect(await batchOf(db, batchId)).toMatchObject({
      state: "OPEN",
      worker: "w1",
      table: TABLE,
      stagedSnapshotId: null,
      ingestedAtMicros: MARKER,
      publishLive: false,
      members: refs.map((r) => ({ id: r.id, version: 1, path: r.path, records: null, liveLease: true })),
    });

    expect(await publish(db, batchId, refs, { publishLeaseMs: 600_000 })).toBe(true);
    const decided = await batchOf(db, batchId);
    expect(decided).toMatchObject({
      state: "PUBLISHING",
      stagedSnapshotId: STAGED,
      snapshotId: null,
      ingestedAtMicros: MARKER,
      publishLive: true,
      members: refs.map((r, i) => ({ id: r.id, version: 1, records: 10 * (i + 1), liveLease: true })),
    });
    // The leases now last as long as the publisher's time (600 s), not the claim's 30 s.
    const renewed = await leases(db, refs);
    for (const lease of renewed) {
      expect(lease.owner).toBe("w1");
      expect(lease.msLeft).toBeGreaterThan(500_000);
    }
    const { rows } = await db.pool.query<{ ms_left: number }>(
      `SELECT (extract(epoch FROM publish_until - now()) * 1000)::float8 AS ms_left FROM write_batches WHERE id = $1`,
      [batchId],
    );
    expect(rows[0]!.ms_left).toBeGreaterThan(500_000);
    expect(await batchRow(db, batchId)).toMatchObject({ resolved_at: null, error_message: null });

    // Decided once: a second call, even with another staged snapshot, changes nothing.
    expect(await publish(db, batchId, [...refs].reverse(), { stagedSnapshotId: "1" })).toBe(false);
    expect(await batchOf(db, batchId)).toEqual(decided);
    expect(held(await leases(db, refs))).toEqual(held(renewed));
  });

  it("refuses a batch that was abandoned first", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 2);
    const batchId = await heldBatch(db, ingestionId, refs);
    const before = await leases(db, refs);
    expect(
      await abandonBatch(db, { batchId, from: "OPEN", state: "ABANDONED", errorMessage: "writer gone" }),
    ).toBe("ABANDONED");

    expect(await publish(db, batchId, refs)).toBe(false);
    expect(await batchOf(db, batchId)).toMatchObject({
      state: "ABANDONED",
      stagedSnapshotId: null,
      members: refs.map(() => ({ records: null })),
    });
    expect(held(await leases(db, refs))).toEqual(held(before));
  });

  it("refuses when another worker took over any one member's expired lease", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 3);
    const [, victim] = refs as [FileRef, FileRef, FileRef];
    const batchId = await heldBatch(db, ingestionId, refs);
    await expireLease(db, victim.id);
    expect(await claimFiles(db, { refs: [victim], worker: "w2", leaseMs: 60_000 })).toMatchObject<
      Partial<ClaimedFile>[]
    >([{ id: victim.id, attempt: 2, previousBatchId: batchId }]);
    const before = await leases(db, refs);

    expect(await publish(db, batchId, refs)).toBe(false);
    expect(await batchOf(db, batchId)).toMatchObject({
      state: "OPEN",
      stagedSnapshotId: null,
      publishLive: false,
      members: refs.map(() => ({ records: null })),
    });
    // Nobody's lease was extended by the refused call, and the taker keeps its member.
    expect(held(await leases(db, refs))).toEqual(held(before));
    expect(before.map((l) => l.owner)).toEqual(["w1", "w2", "w1"]);
  });

  it("refuses when a member was reclaimed by the reconciler before the batch opened", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 3);
    const [, victim] = refs as [FileRef, FileRef, FileRef];
    expect(await claimFiles(db, { refs, worker: "w1", leaseMs: 60_000 })).toHaveLength(3);
    await expireLease(db, victim.id);
    expect(await reclaimExpiredLeases(db)).toEqual([{ ...victim, ingestionId }]);

    // The writer does not know yet and opens a batch of all three: the reclaimed one is not marked.
    const batchId = randomUUID();
    await openBatch(db, {
      batchId,
      ingestionId,
      table: TABLE,
      worker: "w1",
      files: refs,
      ingestedAtMicros: MARKER,
    });
    expect(await getFile(db, ingestionId, victim.path)).toMatchObject({ status: "PENDING", batchId: null });

    expect(await publish(db, batchId, refs)).toBe(false);
    expect((await batchOf(db, batchId)).state).toBe("OPEN");
  });

  it("does not let the reconciler reclaim an OPEN batch's expired member: only abandoning the batch fences its holder", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 4);
    const [a, b, c, d] = refs as [FileRef, FileRef, FileRef, FileRef];
    const left = await heldBatch(db, ingestionId, [a, b]);
    const recovered = await heldBatch(db, ingestionId, [c, d]);
    await db.pool.query(`UPDATE processed_files SET lease_expires_at = now() - interval '1 second'`);
    expect(await reclaimExpiredLeases(db)).toEqual([]);
    expect((await batchOf(db, left)).members.map((m) => m.liveLease)).toEqual([false, false]);

    // Nobody took the files over and nobody gave up on the batch: an expired lease alone is no fence.
    expect(await publish(db, left, [a, b])).toBe(true);
    expect((await leases(db, [a, b])).every((l) => l.owner === "w1" && l.msLeft! > 0)).toBe(true);

    // Recovery gives up on the other batch; then its members are reclaimed, and its writer is fenced.
    expect((await unresolvedBatches(db, { olderThanMs: 0 })).map((u) => u.id)).toEqual([recovered]);
    expect(
      await abandonBatch(db, { batchId: recovered, from: "OPEN", state: "ABANDONED", errorMessage: "gone" }),
    ).toBe("ABANDONED");
    expect(await reclaimExpiredLeases(db)).toEqual([
      { ...c, ingestionId },
      { ...d, ingestionId },
    ]);
    expect(await publish(db, recovered, [c, d])).toBe(false);
    // The abandoned batch can never become visible, so the next claimer has nothing to resolve.
    expect(await claimFiles(db, { refs: [c, d], worker: "w2", leaseMs: 60_000 })).toMatchObject([
      { id: c.id, previousBatchId: null },
      { id: d.id, previousBatchId: null },
    ]);
  });

  it("refuses when a member moved to a new version", async () => {
    const db = await freshDatabase();
    const { ingestionId, runId, refs } = await registered(db, 3, "append");
    const batchId = await heldBatch(db, ingestionId, refs);
    const { modified } = await registerFiles(db, {
      ingestionId,
      runId,
      files: listing(2, 3, "e2"),
      modifiedPolicy: "append",
    });
    expect(modified).toEqual([{ id: refs[2]!.id, version: 2, path: refs[2]!.path }]);

    expect(await publish(db, batchId, refs)).toBe(false);
    expect(await batchOf(db, batchId)).toMatchObject({ state: "OPEN", stagedSnapshotId: null });
  });

  it("lets whichever of beginPublish and a takeover locks the member first win, each seeing the other's commit", async () => {
    const db = await freshDatabase();
    const publisher = secondConnection(db);
    const taker = secondConnection(db);
    const { ingestionId, refs } = await registered(db, 6);
    const lockVictim = (victim: FileRef) => ({
      sql: `SELECT 1 FROM processed_files WHERE id = $1 FOR UPDATE`,
      params: [victim.id],
    });

    // The takeover first: the fence, having read its snapshot before the takeover committed, still refuses.
    const first = refs.slice(0, 3);
    const firstVictim = first[1]!;
    const fenced = await heldBatch(db, ingestionId, first);
    await expireLease(db, firstVictim.id);
    const [taken, refused] = await inLockOrder<ClaimedFile[] | boolean>(db, lockVictim(firstVictim), [
      () => claimFiles(taker, { refs: [firstVictim], worker: "w2", leaseMs: 60_000 }),
      () => publish(publisher, fenced, first),
    ]);
    expect(taken).toMatchObject([{ id: firstVictim.id, previousBatchId: fenced }]);
    expect(refused).toBe(false);
    expect((await batchOf(db, fenced)).state).toBe("OPEN");

    // The fence first: the claimer, having read the expired lease before the fence renewed it, claims nothing.
    const second = refs.slice(3);
    const secondVictim = second[1]!;
    const decided = await heldBatch(db, ingestionId, second);
    await expireLease(db, secondVictim.id);
    const [won, none] = await inLockOrder<ClaimedFile[] | boolean>(db, lockVictim(secondVictim), [
      () => publish(publisher, decided, second),
      () => claimFiles(taker, { refs: [secondVictim], worker: "w2", leaseMs: 60_000 }),
    ]);
    expect(won).toBe(true);
    expect(none).toEqual([]);
    expect((await batchOf(db, decided)).state).toBe("PUBLISHING");
    expect((await leases(db, second)).map((l) => l.owner)).toEqual(["w1", "w1", "w1"]);
  });

  it("never both decides a batch and lets a member go unnoticed, over 50 unsynchronised races", async () => {
    const db = await freshDatabase();
    const publisher = secondConnection(db);
    const taker = secondConnection(db);
    const rounds = 50;
    const { ingestionId, refs } = await registered(db, rounds * 3);
    const seen = { decided: 0, decidedThenTaken: 0, fenced: 0 };
    for (let round = 0; round < rounds; round++) {
      const members = refs.slice(round * 3, round * 3 + 3);
      const victim = members[round % 3]!;
      const batchId = await heldBatch(db, ingestionId, members);
      const [won, taken] = await Promise.all([
        publish(publisher, batchId, members),
        (async () => {
          await expireLease(taker, victim.id);
          return claimFiles(taker, { refs: [victim], worker: "w2", leaseMs: 60_000 });
        })(),
      ]);
      const batch = await batchOf(db, batchId);
      const owners = (await leases(db, members)).map((l) => l.owner);
      const context = { round, won, taken, state: batch.state };
      if (won) {
        expect(batch.state, JSON.stringify(context)).toBe("PUBLISHING");
        if (taken.length > 0) {
          // Its lease was expired by hand after the fence renewed it: the taker must resolve the batch first.
          expect(taken, JSON.stringify(context)).toMatchObject([{ id: victim.id, previousBatchId: batchId }]);
          seen.decidedThenTaken += 1;
        } else {
          expect(owners, JSON.stringify(context)).toEqual(["w1", "w1", "w1"]);
          seen.decided += 1;
        }
      } else {
        // Only a takeover can have fenced it, and then the batch stays undecided.
        expect(batch.state, JSON.stringify(context)).toBe("OPEN");
        expect(batch.stagedSnapshotId, JSON.stringify(context)).toBeNull();
        expect(taken, JSON.stringify(context)).toMatchObject([{ id: victim.id, previousBatchId: batchId }]);
        expect(
          owners.filter((o) => o === "w2"),
          JSON.stringify(context),
        ).toHaveLength(1);
        seen.fenced += 1;
      }
    }
    expect(seen.decided + seen.decidedThenTaken + seen.fenced).toBe(rounds);
  });
});

describe("abandonBatch", () => {
  it("from OPEN after beginPublish won: returns PUBLISHING and changes nothing", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 2);
    const batchId = await heldBatch(db, ingestionId, refs);
    expect(await publish(db, batchId, refs)).toBe(true);
    const decided = await batchOf(db, batchId);

    expect(
      await abandonBatch(db, { batchId, from: "OPEN", state: "ABANDONED", errorMessage: "too late" }),
    ).toBe("PUBLISHING");
    expect(await abandonBatch(db, { batchId, from: "OPEN", state: "FAILED", errorMessage: "too late" })).toBe(
      "PUBLISHING",
    );
    expect(await batchOf(db, batchId)).toEqual(decided);
    expect(await batchRow(db, batchId)).toMatchObject({ error_message: null, resolved_at: null });
    expect(
      await abandonBatch(db, { batchId: randomUUID(), from: "OPEN", state: "ABANDONED", errorMessage: "x" }),
    ).toBeUndefined();
  });

  it("from OPEN, queued behind a beginPublish that wins, reports PUBLISHING (the state that decided first)", async () => {
    const db = await freshDatabase();
    const publisher = secondConnection(db);
    const recovery = secondConnection(db);
    const { ingestionId, refs } = await registered(db, 2);
    const batchId = await heldBatch(db, ingestionId, refs);
    // Both read the batch OPEN before either may change it; the publisher gets the row first.
    const [won, after] = await inLockOrder<boolean | string | undefined>(
      db,
      { sql: `SELECT 1 FROM write_batches WHERE id = $1 FOR UPDATE`, params: [batchId] },
      [
        () => publish(publisher, batchId, refs),
        () => abandonBatch(recovery, { batchId, from: "OPEN", state: "ABANDONED", errorMessage: "gone" }),
      ],
    );
    expect(won).toBe(true);
    expect((await batchOf(db, batchId)).state).toBe("PUBLISHING");
    // A caller that is told anything but PUBLISHING treats the batch as never published.
    expect(after).toBe("PUBLISHING");
  });

  it("from PUBLISHING (the staged snapshot is gone): ABANDONED for good, and the files' next claim has nothing to resolve", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 2);
    const batchId = await heldBatch(db, ingestionId, refs);
    expect(await publish(db, batchId, refs)).toBe(true);

    expect(
      await abandonBatch(db, {
        batchId,
        from: "PUBLISHING",
        state: "ABANDONED",
        errorMessage: "snapshot expired",
      }),
    ).toBe("ABANDONED");
    const row = await batchRow(db, batchId);
    expect(row).toMatchObject({ state: "ABANDONED", error_message: "snapshot expired", snapshot_id: null });
    expect(row.resolved_at).toBeInstanceOf(Date);
    expect(
      await abandonBatch(db, { batchId, from: "PUBLISHING", state: "FAILED", errorMessage: "again" }),
    ).toBe("ABANDONED");
    await recordOutcomes(db, {
      worker: null,
      outcomes: [],
      batch: { id: batchId, state: "COMMITTED", snapshotId: "9" },
    });
    expect(await batchRow(db, batchId)).toMatchObject({ state: "ABANDONED", snapshot_id: null });

    await recordOutcomes(db, {
      worker: "w1",
      outcomes: refs.map((r) => ({ id: r.id, version: 1, status: "PENDING" as const, counted: false })),
    });
    expect(await claimFiles(db, { refs, worker: "w2", leaseMs: 60_000 })).toMatchObject([
      { attempt: 2, previousBatchId: null },
      { attempt: 2, previousBatchId: null },
    ]);
  });

  it("a decided batch whose publisher's time ran out goes to recovery; its members wait for it, and a claimer is sent to it", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 2);
    const [claimed, waiting] = refs as [FileRef, FileRef];
    const batchId = await heldBatch(db, ingestionId, refs);
    expect(await publish(db, batchId, refs)).toBe(true);
    expect(await unresolvedBatches(db, { olderThanMs: 3_600_000 })).toEqual([]);

    // The publisher died: its time and the leases it extended run out.
    await db.pool.query(
      `UPDATE write_batches SET publish_until = now() - interval '1 second' WHERE id = $1`,
      [batchId],
    );
    await db.pool.query(`UPDATE processed_files SET lease_expires_at = now() - interval '1 second'`);
    expect(await unresolvedBatches(db, { olderThanMs: 3_600_000 })).toMatchObject([
      { id: batchId, worker: "w1", files: refs.map((r) => ({ id: r.id, version: 1 })) },
    ]);
    expect((await batchOf(db, batchId)).publishLive).toBe(false);
    // It may still be published, so the reconciler does not hand its members back...
    expect(await reclaimExpiredLeases(db)).toEqual([]);
    // ...and a job that takes one over is told to resolve the batch before writing the file again.
    expect(await claimFiles(db, { refs: [claimed], worker: "w2", leaseMs: 60_000 })).toMatchObject([
      { id: claimed.id, attempt: 2, previousBatchId: batchId },
    ]);

    expect(
      await abandonBatch(db, {
        batchId,
        from: "PUBLISHING",
        state: "ABANDONED",
        errorMessage: "snapshot expired",
      }),
    ).toBe("ABANDONED");
    expect(await reclaimExpiredLeases(db)).toEqual([{ ...waiting, ingestionId }]);
  });
});

describe("recordOutcomes and the fence", () => {
  it("records COMMITTED only for a PUBLISHING batch: an OPEN one stays OPEN", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 2);
    const batchId = await heldBatch(db, ingestionId, refs);
    await recordOutcomes(db, {
      worker: "w1",
      outcomes: [],
      batch: { id: batchId, state: "COMMITTED", snapshotId: "7" },
    });
    expect(await batchRow(db, batchId)).toMatchObject({
      state: "OPEN",
      snapshot_id: null,
      resolved_at: null,
    });
    // Still decidable afterwards: nothing about the batch changed.
    expect(await publish(db, batchId, refs)).toBe(true);
  });

  it("with worker null settles every member of a PUBLISHING batch SUCCESS, even one another worker holds now", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 3);
    const [taken] = refs as [FileRef, FileRef, FileRef];
    const batchId = await heldBatch(db, ingestionId, refs);
    expect(await publish(db, batchId, refs)).toBe(true);
    // The publisher's time ran out before it recorded the commit; another worker took a member over.
    await expireLease(db, taken.id);
    expect(await claimFiles(db, { refs: [taken], worker: "w2", leaseMs: 60_000 })).toMatchObject([
      { id: taken.id, previousBatchId: batchId },
    ]);

    const members = (await batchOf(db, batchId)).members;
    const { applied } = await recordOutcomes(db, {
      worker: null,
      outcomes: members.map((m) => ({
        id: m.id,
        version: m.version,
        status: "SUCCESS" as const,
        recordsIngested: m.records ?? 0,
      })),
      batch: { id: batchId, state: "COMMITTED", snapshotId: "77" },
    });
    expect(applied).toEqual(refs.map((r) => r.id));
    for (const [i, ref] of refs.entries()) {
      expect(await getFile(db, ingestionId, ref.path)).toMatchObject({
        status: "SUCCESS",
        recordsIngested: 10 * (i + 1),
        snapshotId: "77",
        batchId,
        leaseOwner: null,
      });
    }
    expect(await batchRow(db, batchId)).toMatchObject({ state: "COMMITTED", snapshot_id: "77" });
    expect(await renewLeases(db, { worker: "w2", fileIds: [taken.id], leaseMs: 60_000 })).toEqual([]);
  });

  it("does not count an outcome with counted false against the file, and marks its attempt so", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 2);
    const [retried, failed] = refs as [FileRef, FileRef];
    await claimFiles(db, { refs, worker: "w1", leaseMs: 60_000 });
    const attempts = async () =>
      (
        await db.pool.query<{ file_id: string; attempt: number; outcome: string; counted: boolean }>(
          `SELECT file_id, attempt, outcome, counted FROM file_attempts ORDER BY file_id, attempt`,
        )
      ).rows.map((r) => [Number(r.file_id), r.attempt, r.outcome, r.counted]);

    await recordOutcomes(db, {
      worker: "w1",
      outcomes: [
        { id: retried.id, version: 1, status: "PENDING", errorType: "SPARK_UNAVAILABLE", counted: false },
        { id: failed.id, version: 1, status: "FAILED", errorType: "STORAGE_UNAVAILABLE", counted: false },
      ],
    });
    expect(await getFile(db, ingestionId, retried.path)).toMatchObject({ status: "PENDING", retryCount: 0 });
    expect(await getFile(db, ingestionId, failed.path)).toMatchObject({ status: "FAILED", retryCount: 0 });
    expect(await attempts()).toEqual([
      [retried.id, 1, "RETRY", false],
      [failed.id, 1, "FAILED", false],
    ]);

    // The default counts.
    await claimFiles(db, { refs: [retried], worker: "w1", leaseMs: 60_000 });
    await recordOutcomes(db, {
      worker: "w1",
      outcomes: [{ id: retried.id, version: 1, status: "PENDING", errorType: "MALFORMED_FILE" }],
    });
    expect(await getFile(db, ingestionId, retried.path)).toMatchObject({ status: "PENDING", retryCount: 1 });
    expect((await attempts())[1]).toEqual([retried.id, 2, "RETRY", true]);
  });
});

describe("claimFiles for an ingestion, and fileIdentities", () => {
  it("claims a file only for its own ingestion, and tells a job what the file is", async () => {
    const db = await freshDatabase();
    const { ingestionId, refs } = await registered(db, 1);
    const { ingestion: other } = await newIngestion(db, { name: "other" });
    const ref = refs[0]!;
    expect((await fileIdentities(db, [ref.id])).get(ref.id)).toEqual({
      ingestionId,
      version: 1,
      status: "PENDING",
    });

    expect(
      await claimFiles(db, { refs: [{ ...ref, ingestionId: other.id }], worker: "w1", leaseMs: 60_000 }),
    ).toEqual([]);
    expect(await getFile(db, ingestionId, ref.path)).toMatchObject({ status: "PENDING", attempts: 0 });
    expect((await fileIdentities(db, [ref.id])).get(ref.id)).toEqual({
      ingestionId,
      version: 1,
      status: "PENDING",
    });

    expect(
      await claimFiles(db, { refs: [{ ...ref, ingestionId }], worker: "w1", leaseMs: 60_000 }),
    ).toMatchObject([{ id: ref.id, ingestionId, attempt: 1 }]);
    expect(await fileIdentities(db, [ref.id, 999_999, ref.id])).toEqual(
      new Map([[ref.id, { ingestionId, version: 1, status: "PROCESSING" }]]),
    );
  });
});
