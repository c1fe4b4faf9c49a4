import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import type { UnresolvedBatch } from "./types.ts";
import { requireCount, requireId, requireRefs, requireText, requireUuid, toNumber } from "./values.ts";

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
         INSERT INTO write_batches (id, ingestion_id, table_name, worker, file_count)
         VALUES ($1, $2, $3, $4, $7)
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
      [input.batchId, input.ingestionId, input.table, input.worker, ids, versions, ids.length],
    );
  });
}

/**
 * Batches still OPEN after `olderThanMs`, oldest first, with their members: the reconciler looks for each
 * id in its table's snapshot summaries and resolves it with {@link recordOutcomes} (worker null).
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
       WHERE wb.state = 'OPEN' AND wb.created_at < now() - $1::float8 * interval '1 millisecond'
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
  /** The file is still at the member's version and leased (by anyone) until after now. */
  liveLease: boolean;
}

/** A write batch's table and members, or undefined when no batch has that id. */
export async function readBatch(
  db: Database,
  batchId: string,
): Promise<{ id: string; table: string; members: BatchMember[] } | undefined> {
  requireUuid("batchId", batchId);
  return runOperation("readBatch", async () => {
    const { rows } = await db.pool.query<{
      table_name: string;
      file_id: string | null;
      version: number | null;
      file_path: string | null;
      file_size: string | null;
      live_lease: boolean | null;
    }>(
      `SELECT wb.table_name, wbf.file_id, wbf.version, pf.file_path, pf.file_size,
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
              liveLease: row.live_lease === true,
            },
          ],
    );
    return { id: batchId, table: first.table_name, members };
  });
}
