import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import type { ClaimedFile } from "./types.ts";
import { requireCount, requireId, requireRefs, requireText, toNumber } from "./values.ts";

/** error_type of an attempt that ended because its lease ran out. */
export const LEASE_EXPIRED = "LEASE_EXPIRED";

/*
 * Locks the claimable rows in id order (so concurrent claimers queue rather than deadlock); a row another
 * transaction changed meanwhile is re-checked against its committed state, so a file is claimed by one
 * caller only. Taking over an expired lease closes the earlier attempt as LOST.
 */
const CLAIM_FILES_SQL = `
WITH requested AS (
  SELECT * FROM unnest($1::bigint[], $2::int[], $5::bigint[]) AS r(id, version, ingestion_id)
),
claimable AS MATERIALIZED (
  SELECT pf.id, pf.status AS previous_status
  FROM processed_files pf
  JOIN requested r ON r.id = pf.id AND r.version = pf.version
    AND (r.ingestion_id IS NULL OR r.ingestion_id = pf.ingestion_id)
  WHERE pf.status = 'PENDING' OR (pf.status = 'PROCESSING' AND pf.lease_expires_at < now())
  ORDER BY pf.id
  FOR UPDATE OF pf
),
claimed AS (
  UPDATE processed_files pf SET status = 'PROCESSING', lease_owner = $3,
    lease_expires_at = now() + $4::float8 * interval '1 millisecond', processing_started_at = now(),
    attempts = pf.attempts + 1, updated_at = now()
  FROM claimable c WHERE pf.id = c.id
  RETURNING pf.id, pf.ingestion_id, pf.version, pf.file_path, pf.file_size, pf.attempts, pf.batch_id,
            c.previous_status
),
taken_over AS (
  UPDATE file_attempts fa SET finished_at = now(), outcome = 'LOST', error_type = '${LEASE_EXPIRED}',
    error_message = 'the lease expired; the file was claimed again by ' || $3,
    duration_ms = (extract(epoch FROM now() - fa.started_at) * 1000)::int
  FROM claimed c
  WHERE c.previous_status = 'PROCESSING' AND fa.file_id = c.id AND fa.version = c.version
    AND fa.finished_at IS NULL
),
opened AS (
  INSERT INTO file_attempts (file_id, version, attempt, worker, started_at)
  SELECT id, version, attempts, $3, now() FROM claimed
)
SELECT c.id, c.ingestion_id, c.version, c.file_path, c.file_size, c.attempts,
       CASE WHEN wb.state IN ('OPEN', 'PUBLISHING', 'COMMITTED') THEN c.batch_id END AS previous_batch_id
FROM claimed c LEFT JOIN write_batches wb ON wb.id = c.batch_id
ORDER BY c.id`;

/**
 * Takes leases on the given file versions for `worker`: each one that is PENDING, or PROCESSING under an
 * expired lease, at exactly that version becomes PROCESSING until now + `leaseMs`, with a new attempt.
 * Others (already claimed, settled, at another version, or of another ingestion than asked) are left out of
 * the result. Atomic; concurrent
 * callers never both get the same file.
 */
export async function claimFiles(
  db: Database,
  input: {
    /** File versions to claim; with `ingestionId`, only if the file belongs to that ingestion. */
    refs: { id: number; version: number; ingestionId?: number }[];
    worker: string;
    leaseMs: number;
  },
): Promise<ClaimedFile[]> {
  const { ids, versions } = requireRefs("refs", input.refs);
  requireText("worker", input.worker);
  requireCount("leaseMs", input.leaseMs, 1);
  if (ids.length === 0) return [];
  return runOperation("claimFiles", async () => {
    const { rows } = await db.pool.query<{
      id: string;
      ingestion_id: string;
      version: number;
      file_path: string;
      file_size: string;
      attempts: number;
      previous_batch_id: string | null;
    }>(CLAIM_FILES_SQL, [
      ids,
      versions,
      input.worker,
      input.leaseMs,
      input.refs.map((ref) => ref.ingestionId ?? null),
    ]);
    return rows.map((row) => ({
      id: toNumber(row.id),
      ingestionId: toNumber(row.ingestion_id),
      version: row.version,
      path: row.file_path,
      size: toNumber(row.file_size),
      attempt: row.attempts,
      previousBatchId: row.previous_batch_id,
    }));
  });
}

/**
 * Extends `worker`'s leases on these files to now + `leaseMs` and returns the ids it still holds; a
 * missing id means the lease was lost (taken over, or the file changed) and the work must not be recorded.
 */
export async function renewLeases(
  db: Database,
  input: { worker: string; fileIds: number[]; leaseMs: number },
): Promise<number[]> {
  input.fileIds.forEach((id, i) => requireId(`fileIds[${i}]`, id));
  requireText("worker", input.worker);
  requireCount("leaseMs", input.leaseMs, 1);
  if (input.fileIds.length === 0) return [];
  return runOperation("renewLeases", async () => {
    const { rows } = await db.pool.query<{ id: string }>(
      `WITH held AS MATERIALIZED (
         SELECT id FROM processed_files
         WHERE id = ANY($1::bigint[]) AND status = 'PROCESSING' AND lease_owner = $2
         ORDER BY id
         FOR UPDATE
       )
       UPDATE processed_files pf SET lease_expires_at = now() + $3::float8 * interval '1 millisecond', updated_at = now()
       FROM held WHERE pf.id = held.id
       RETURNING pf.id`,
      [input.fileIds, input.worker, input.leaseMs],
    );
    return rows.map((row) => toNumber(row.id)).sort((a, b) => a - b);
  });
}

/**
 * Files of an ingestion waiting for their first attempt (PENDING, never claimed, in no batch), oldest
 * first, at most `limit` files and `maxBytes` bytes in all: what a worker about to write the
 * ingestion's table can claim and write along with its own batch instead of waiting for their jobs. With
 * `firstVersionOnly`, only files at version 1. Read-only: claim them with {@link claimFiles}.
 */
export async function firstAttemptFiles(
  db: Database,
  input: {
    ingestionId: number;
    limit: number;
    maxBytes: number;
    firstVersionOnly: boolean;
    /** Leave out files larger than this (files that go in batches of their own, or are skipped). */
    maxFileBytes?: number;
  },
): Promise<{ id: number; version: number; size: number }[]> {
  requireId("ingestionId", input.ingestionId);
  requireCount("limit", input.limit);
  requireCount("maxBytes", input.maxBytes);
  if (input.maxFileBytes !== undefined) requireCount("maxFileBytes", input.maxFileBytes);
  if (input.limit === 0) return [];
  return runOperation("firstAttemptFiles", async () => {
    const { rows } = await db.pool.query<{ id: string; version: number; file_size: string }>(
      `SELECT id, version, file_size FROM processed_files
        WHERE ingestion_id = $1 AND status = 'PENDING' AND attempts = 0 AND batch_id IS NULL
          AND (NOT $3 OR version = 1) AND ($4::bigint IS NULL OR file_size <= $4)
        ORDER BY id
        LIMIT $2`,
      [input.ingestionId, input.limit, input.firstVersionOnly, input.maxFileBytes ?? null],
    );
    const files: { id: number; version: number; size: number }[] = [];
    let bytes = 0;
    for (const row of rows) {
      const size = toNumber(row.file_size);
      if (bytes + size > input.maxBytes) break;
      bytes += size;
      files.push({ id: toNumber(row.id), version: row.version, size });
    }
    return files;
  });
}
