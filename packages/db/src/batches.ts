import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import type { UnresolvedBatch } from "./types.ts";
import {
  requireCount,
  requireId,
  requireInt64,
  requireOneOf,
  requireRefs,
  requireText,
  requireUuid,
  toNumber,
} from "./values.ts";

/**
 * Records that `worker` is about to write these claimed file versions to `table` in one commit whose
 * snapshot summary carries `batchId`: an OPEN write_batches row, its members, and the batch id on each
 * file (and its open attempt) the worker still holds at that version. Open the batch before committing,
 * so that a crash after the commit leaves a batch id to look for.
 *
 * @throws DatabaseError (DB_ERROR) when a batch with this id already exists.
 */
export async function openBatch(
  db: Database,
  input: {
    batchId: string;
    ingestionId: number;
    table: string;
    worker: string;
    files: { id: number; version: number }[];
    /** The `_ingested_at` value the batch's rows carry (µs since the epoch). */
    ingestedAtMicros: bigint;
  },
): Promise<void> {
  requireUuid("batchId", input.batchId);
  requireId("ingestionId", input.ingestionId);
  requireText("table", input.table);
  requireText("worker", input.worker);
  const { ids, versions } = requireRefs("files", input.files);
  await runOperation("openBatch", async () => {
    // Foreign keys are checked at the end of the statement, so the batch and its members go in together.
    await db.pool.query(
      `WITH members AS (
         SELECT * FROM unnest($5::bigint[], $6::int[]) AS m(file_id, version)
       ),
       batch AS (
         INSERT INTO write_batches (id, ingestion_id, table_name, worker, file_count, ingested_at_micros)
         VALUES ($1, $2, $3, $4, $7, $8::bigint)
       ),
       batch_files AS (
         INSERT INTO write_batch_files (batch_id, file_id, version)
         SELECT $1, file_id, version FROM members
       ),
       held AS MATERIALIZED (
         SELECT pf.id FROM processed_files pf JOIN members m ON m.file_id = pf.id AND m.version = pf.version
         WHERE pf.status = 'PROCESSING' AND pf.lease_owner = $4
         ORDER BY pf.id
         FOR UPDATE OF pf
       ),
       marked AS (
         UPDATE processed_files pf SET batch_id = $1, updated_at = now()
         FROM held WHERE pf.id = held.id
         RETURNING pf.id, pf.version, pf.attempts
       )
       UPDATE file_attempts fa SET batch_id = $1
       FROM marked m
       WHERE fa.file_id = m.id AND fa.version = m.version AND fa.attempt = m.attempts AND fa.finished_at IS NULL`,
      [
        input.batchId,
        input.ingestionId,
        input.table,
        input.worker,
        ids,
        versions,
        ids.length,
        String(input.ingestedAtMicros),
      ],
    );
  });
}

/**
 * Batches to resolve, oldest first, with their members: OPEN after `olderThanMs`, and PUBLISHING ones whose
 * publisher's time ran out. The reconciler resolves each (abandons or publishes it).
 */
export async function unresolvedBatches(
  db: Database,
  input: { olderThanMs: number; limit?: number },
): Promise<UnresolvedBatch[]> {
  requireCount("olderThanMs", input.olderThanMs);
  const limit = requireCount("limit", input.limit ?? 100, 1);
  return runOperation("unresolvedBatches", async () => {
    const { rows } = await db.pool.query<{
      id: string;
      ingestion_id: string;
      table_name: string;
      worker: string;
      created_at: Date;
      files: { id: number | string; version: number }[];
    }>(
      `SELECT wb.id, wb.ingestion_id, wb.table_name, wb.worker, wb.created_at,
              COALESCE((SELECT json_agg(json_build_object('id', wbf.file_id, 'version', wbf.version)
                                        ORDER BY wbf.file_id)
                        FROM write_batch_files wbf WHERE wbf.batch_id = wb.id), '[]') AS files
       FROM write_batches wb
       WHERE (wb.state = 'OPEN' AND wb.created_at < now() - $1::float8 * interval '1 millisecond')
          OR (wb.state = 'PUBLISHING' AND wb.publish_until < now())
       ORDER BY wb.created_at
       LIMIT $2`,
      [input.olderThanMs, limit],
    );
    return rows.map((row) => ({
      id: row.id,
      ingestionId: toNumber(row.ingestion_id),
      table: row.table_name,
      worker: row.worker,
      createdAt: row.created_at,
      files: row.files.map((f) => ({ id: toNumber(f.id), version: f.version })),
    }));
  });
}

/** A member of a write batch, with what recovering the batch needs to know about its file now. */
export interface BatchMember {
  id: number;
  version: number;
  path: string;
  size: number;
  /** Rows the file has in the staged snapshot; set once the batch is PUBLISHING. */
  records: number | null;
  /** Records parsed and rejected, and the first bad record (batches that set bad records apart). */
  recordsParsed: number | null;
  recordsRejected: number | null;
  firstError: string | null;
  /** The file is still at the member's version and leased (by anyone) until after now. */
  liveLease: boolean;
}

/** A write batch as recovery sees it. */
export interface BatchRecord {
  id: string;
  table: string;
  state: "OPEN" | "PUBLISHING" | "COMMITTED" | "FAILED" | "ABANDONED";
  worker: string;
  stagedSnapshotId: string | null;
  /** The batch's bad records staged in `<table>__rejected`; null when it had none. */
  rejectedStagedSnapshotId: string | null;
  snapshotId: string | null;
  ingestedAtMicros: bigint | null;
  /** PUBLISHING and its publisher's time has not run out (judged by the database clock). */
  publishLive: boolean;
  members: BatchMember[];
}

/** A write batch with its members, or undefined when no batch has that id. */
export async function readBatch(db: Database, batchId: string): Promise<BatchRecord | undefined> {
  requireUuid("batchId", batchId);
  return runOperation("readBatch", async () => {
    const { rows } = await db.pool.query<{
      table_name: string;
      state: BatchRecord["state"];
      worker: string;
      staged_snapshot_id: string | null;
      rejected_staged_snapshot_id: string | null;
      snapshot_id: string | null;
      ingested_at_micros: string | null;
      publish_live: boolean;
      file_id: string | null;
      version: number | null;
      records: string | null;
      records_parsed: string | null;
      records_rejected: string | null;
      first_error: string | null;
      file_path: string | null;
      file_size: string | null;
      live_lease: boolean | null;
    }>(
      `SELECT wb.table_name, wb.state, wb.worker, wb.staged_snapshot_id::text,
              wb.rejected_staged_snapshot_id::text, wb.snapshot_id::text,
              wb.ingested_at_micros::text, (wb.state = 'PUBLISHING' AND wb.publish_until > now()) AS publish_live,
              wbf.file_id, wbf.version, wbf.records, wbf.records_parsed, wbf.records_rejected, wbf.first_error,
              pf.file_path, pf.file_size,
              (pf.version = wbf.version AND pf.status = 'PROCESSING' AND pf.lease_expires_at > now())
                AS live_lease
       FROM write_batches wb
       LEFT JOIN write_batch_files wbf ON wbf.batch_id = wb.id
       LEFT JOIN processed_files pf ON pf.id = wbf.file_id
       WHERE wb.id = $1
       ORDER BY wbf.file_id`,
      [batchId],
    );
    const [first] = rows;
    if (!first) return undefined;
    const members = rows.flatMap((row) =>
      row.file_id === null || row.version === null || row.file_path === null
        ? []
        : [
            {
              id: toNumber(row.file_id),
              version: row.version,
              path: row.file_path,
              size: toNumber(row.file_size ?? "0"),
              records: row.records === null ? null : toNumber(row.records),
              recordsParsed: row.records_parsed === null ? null : toNumber(row.records_parsed),
              recordsRejected: row.records_rejected === null ? null : toNumber(row.records_rejected),
              firstError: row.first_error,
              liveLease: row.live_lease === true,
            },
          ],
    );
    return {
      id: batchId,
      table: first.table_name,
      state: first.state,
      worker: first.worker,
      stagedSnapshotId: first.staged_snapshot_id,
      rejectedStagedSnapshotId: first.rejected_staged_snapshot_id,
      snapshotId: first.snapshot_id,
      ingestedAtMicros: first.ingested_at_micros === null ? null : BigInt(first.ingested_at_micros),
      publishLive: first.publish_live,
      members,
    };
  });
}

/*
 * The fence. Locks the members' file rows (id order, as claimFiles does, so the two queue rather than
 * deadlock) and the batch row, and moves the batch OPEN -> PUBLISHING only if every member is still held
 * by this worker for this batch: a takeover of any member's lease, a reclaim by the reconciler or a new
 * version makes it fail, and so does an abandoned batch. Renews the members' leases.
 */
const BEGIN_PUBLISH_SQL = `
WITH held AS MATERIALIZED (
  SELECT pf.id,
         (pf.version = m.version AND pf.status = 'PROCESSING' AND pf.lease_owner = $2 AND pf.batch_id = $1
          -- The very claim that opened the batch still holds the file: a takeover (even by this same worker,
          -- of its own expired claim) opens a new attempt without the batch.
          AND EXISTS (SELECT 1 FROM file_attempts fa
                      WHERE fa.file_id = pf.id AND fa.version = pf.version AND fa.attempt = pf.attempts
                        AND fa.finished_at IS NULL AND fa.batch_id = $1))
           AS ours
  FROM write_batch_files m JOIN processed_files pf ON pf.id = m.file_id
  WHERE m.batch_id = $1
  ORDER BY pf.id
  FOR UPDATE OF pf
),
decided AS (
  UPDATE write_batches wb SET state = 'PUBLISHING', staged_snapshot_id = $3::bigint,
    rejected_staged_snapshot_id = $7::bigint,
    publish_until = now() + $4::float8 * interval '1 millisecond'
  WHERE wb.id = $1 AND wb.state = 'OPEN' AND wb.worker = $2
    AND (SELECT count(*) FILTER (WHERE ours) FROM held) = wb.file_count
  RETURNING wb.id
),
counted AS (
  UPDATE write_batch_files m SET records = r.records, records_parsed = r.parsed, records_rejected = r.rejected,
    first_error = r.first_error
  FROM unnest($5::bigint[], $6::bigint[], $8::bigint[], $9::bigint[], $10::text[])
    AS r(file_id, records, parsed, rejected, first_error)
  WHERE m.batch_id = $1 AND m.file_id = r.file_id AND EXISTS (SELECT 1 FROM decided)
),
renewed AS (
  UPDATE processed_files pf SET lease_expires_at = now() + $4::float8 * interval '1 millisecond'
  FROM held WHERE pf.id = held.id AND held.ours AND EXISTS (SELECT 1 FROM decided)
)
SELECT count(*)::int AS decided FROM decided`;

/**
 * The single step that decides a batch becomes visible: OPEN -> PUBLISHING, recording the staged snapshot
 * and each member's rows, if and only if the batch is still OPEN and `worker` still holds every member's
 * lease for it. Returns false when fenced off (the batch was given up on, or a member was taken over).
 * After true, the batch must be published (by this worker within `publishLeaseMs`, else by recovery).
 */
export async function beginPublish(
  db: Database,
  input: {
    batchId: string;
    worker: string;
    stagedSnapshotId: string;
    /** The batch's bad records staged in `<table>__rejected`, when it has some: published with the rows. */
    rejectedStagedSnapshotId?: string;
    /**
     * Rows per member file id; with records parsed and rejected and the first bad record when the batch
     * set bad records apart.
     */
    records: {
      fileId: number;
      records: number;
      parsed?: number;
      rejected?: number;
      firstError?: string;
    }[];
    /** How long this worker alone may publish (and its members' leases are extended), in ms. */
    publishLeaseMs: number;
  },
): Promise<boolean> {
  requireUuid("batchId", input.batchId);
  requireText("worker", input.worker);
  requireInt64("stagedSnapshotId", input.stagedSnapshotId);
  if (input.rejectedStagedSnapshotId !== undefined) {
    requireInt64("rejectedStagedSnapshotId", input.rejectedStagedSnapshotId);
  }
  requireCount("publishLeaseMs", input.publishLeaseMs, 1);
  input.records.forEach((r, i) => {
    requireId(`records[${i}].fileId`, r.fileId);
    requireCount(`records[${i}].records`, r.records);
    if (r.parsed !== undefined) requireCount(`records[${i}].parsed`, r.parsed);
    if (r.rejected !== undefined) requireCount(`records[${i}].rejected`, r.rejected);
  });
  return runOperation("beginPublish", async () => {
    const { rows } = await db.pool.query<{ decided: number }>(BEGIN_PUBLISH_SQL, [
      input.batchId,
      input.worker,
      input.stagedSnapshotId,
      input.publishLeaseMs,
      input.records.map((r) => r.fileId),
      input.records.map((r) => r.records),
      input.rejectedStagedSnapshotId ?? null,
      input.records.map((r) => r.parsed ?? null),
      input.records.map((r) => r.rejected ?? null),
      input.records.map((r) => r.firstError ?? null),
    ]);
    return rows[0]?.decided === 1;
  });
}

/**
 * Gives up on a batch that is not visible and never will be: `from` OPEN (a failed write, or recovery of a
 * writer that is gone) or, only when its staged snapshot can no longer be published, PUBLISHING. Returns
 * the state the batch is in afterwards (the new one when the compare-and-set won; otherwise whatever
 * decided first, e.g. PUBLISHING when its writer got there first), or undefined for no such batch.
 */
export async function abandonBatch(
  db: Database,
  input: {
    batchId: string;
    from: "OPEN" | "PUBLISHING";
    state: "FAILED" | "ABANDONED";
    errorMessage: string;
  },
): Promise<BatchRecord["state"] | undefined> {
  requireUuid("batchId", input.batchId);
  requireOneOf("from", input.from, ["OPEN", "PUBLISHING"] as const);
  requireOneOf("state", input.state, ["FAILED", "ABANDONED"] as const);
  return runOperation("abandonBatch", async () => {
    const { rows } = await db.pool.query<{ state: BatchRecord["state"] }>(
      `WITH given_up AS (
         UPDATE write_batches SET state = $3::batch_state, resolved_at = now(), error_message = $4
         WHERE id = $1 AND state = $2::batch_state
         RETURNING state
       )
       SELECT state FROM given_up
       UNION ALL
       -- A locking read: when a concurrent beginPublish won, see its PUBLISHING, not this statement's snapshot.
       SELECT state FROM (
         SELECT state FROM write_batches WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM given_up) FOR SHARE
       ) AS decided`,
      [input.batchId, input.from, input.state, input.errorMessage],
    );
    return rows[0]?.state;
  });
}
