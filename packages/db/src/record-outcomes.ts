import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import type { Outcome } from "./types.ts";
import {
  requireCount,
  requireInt64,
  requireOneOf,
  requireRefs,
  requireText,
  requireUuid,
  toNumber,
} from "./values.ts";

/** error_type of an attempt whose outcome arrived after its lease was lost or its file changed. */
export const STALE_OUTCOME = "STALE_OUTCOME";

const OUTCOME_STATUSES = ["SUCCESS", "FAILED", "PENDING"] as const;
const BATCH_STATES = ["COMMITTED", "FAILED", "ABANDONED"] as const;

/*
 * One statement is one transaction. An outcome applies only to the file version it names, and (for a
 * worker) only while that worker holds the lease: rows are locked in id order and re-checked against
 * their committed state, so an outcome racing a takeover or a new version loses cleanly. A worker's
 * outcome that does not apply still closes that worker's open attempt, as LOST.
 */
const RECORD_OUTCOMES_SQL = `
WITH o AS (
  SELECT * FROM unnest($2::bigint[], $3::int[], $4::file_status[], $5::bigint[], $6::bigint[],
                       $7::bigint[], $8::uuid[], $9::text[], $10::text[], $15::boolean[])
    AS o(id, version, status, records_ingested, bytes_read, snapshot_id, batch_id, error_type, error_message,
         counted)
),
locked AS MATERIALIZED (
  SELECT pf.id FROM processed_files pf JOIN o ON o.id = pf.id AND o.version = pf.version
  WHERE CASE WHEN $1::text IS NULL THEN pf.status IN ('PENDING', 'PROCESSING')
                  -- A batch found committed after its writer gave up on the file: the rows are there.
                  OR (pf.status = 'FAILED' AND o.status = 'SUCCESS' AND pf.batch_id = COALESCE(o.batch_id, $11::uuid))
             ELSE pf.status = 'PROCESSING' AND pf.lease_owner = $1::text END
    -- SUCCESS from a batch only once it was decided: never for a batch that may still be abandoned.
    AND ($12::batch_state IS DISTINCT FROM 'COMMITTED'
         OR EXISTS (SELECT 1 FROM write_batches wb WHERE wb.id = $11::uuid AND wb.state IN ('PUBLISHING', 'COMMITTED')))
  ORDER BY pf.id
  FOR UPDATE OF pf
),
updated AS (
  UPDATE processed_files pf SET
    status = o.status,
    processed_at = CASE WHEN o.status = 'PENDING' THEN pf.processed_at ELSE now() END,
    processing_duration_ms = (extract(epoch FROM now() - pf.processing_started_at) * 1000)::int,
    records_ingested = o.records_ingested,
    bytes_read = o.bytes_read,
    snapshot_id = CASE WHEN o.status = 'SUCCESS' THEN COALESCE(o.snapshot_id, $13::bigint) END,
    batch_id = COALESCE(o.batch_id, $11::uuid, pf.batch_id),
    error_type = CASE WHEN o.status = 'SUCCESS' THEN NULL ELSE o.error_type END,
    error_message = CASE WHEN o.status = 'SUCCESS' THEN NULL ELSE o.error_message END,
    retry_count = pf.retry_count + CASE WHEN o.status = 'SUCCESS' OR NOT o.counted THEN 0 ELSE 1 END,
    lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
  FROM locked JOIN o ON o.id = locked.id
  WHERE pf.id = locked.id
  RETURNING pf.id, pf.version, pf.attempts, pf.status, pf.records_ingested, pf.snapshot_id, pf.batch_id,
            pf.error_type, pf.error_message, pf.processed_at, o.counted
),
attempt_closed AS (
  UPDATE file_attempts fa SET finished_at = now(),
    outcome = CASE u.status WHEN 'SUCCESS' THEN 'SUCCESS' WHEN 'FAILED' THEN 'FAILED' ELSE 'RETRY' END::attempt_outcome,
    error_type = u.error_type, error_message = u.error_message, records_ingested = u.records_ingested,
    batch_id = COALESCE(u.batch_id, fa.batch_id), counted = u.status = 'SUCCESS' OR u.counted,
    duration_ms = (extract(epoch FROM now() - fa.started_at) * 1000)::int
  FROM updated u
  WHERE fa.file_id = u.id AND fa.version = u.version AND fa.attempt = u.attempts AND fa.finished_at IS NULL
),
writer_attempt_succeeded AS (
  -- A batch found committed after its writer gave up on it (a transient error after the commit; a crashed
  -- writer stays LOST): the attempt that wrote it did succeed, whichever attempt or reconciler found out.
  UPDATE file_attempts fa SET outcome = 'SUCCESS', error_type = NULL, error_message = NULL,
    records_ingested = u.records_ingested
  FROM updated u
  WHERE u.status = 'SUCCESS' AND u.batch_id IS NOT NULL AND fa.file_id = u.id AND fa.version = u.version
    AND fa.finished_at IS NOT NULL AND fa.outcome IN ('RETRY', 'FAILED')
    AND fa.attempt = (SELECT min(first.attempt) FROM file_attempts first
                      WHERE first.file_id = u.id AND first.version = u.version AND first.batch_id = u.batch_id)
),
version_recorded AS (
  UPDATE file_versions fv SET status = u.status, records_ingested = u.records_ingested,
    snapshot_id = u.snapshot_id, batch_id = u.batch_id, processed_at = u.processed_at,
    error_type = u.error_type, error_message = u.error_message
  FROM updated u
  WHERE fv.file_id = u.id AND fv.version = u.version
),
stale_closed AS (
  UPDATE file_attempts fa SET finished_at = now(), outcome = 'LOST', error_type = '${STALE_OUTCOME}',
    error_message = 'the outcome (' || o.status || ') arrived after the lease was lost or the file changed',
    duration_ms = (extract(epoch FROM now() - fa.started_at) * 1000)::int
  FROM o
  WHERE $1::text IS NOT NULL AND fa.file_id = o.id AND fa.version = o.version AND fa.worker = $1::text
    AND fa.finished_at IS NULL AND o.id NOT IN (SELECT id FROM locked)
),
batch_resolved AS (
  UPDATE write_batches SET state = $12::batch_state, resolved_at = now(), snapshot_id = $13::bigint,
    error_message = $14::text
  -- Only a PUBLISHING batch becomes COMMITTED; only an OPEN one (never published) FAILED or ABANDONED.
  WHERE id = $11::uuid AND state = CASE WHEN $12::batch_state = 'COMMITTED' THEN 'PUBLISHING' ELSE 'OPEN' END::batch_state
)
SELECT id FROM updated ORDER BY id`;

/**
 * Records how attempts ended, and resolves their write batch, in one transaction.
 *
 * A COMMITTED batch must be PUBLISHING (published through the fence); FAILED and ABANDONED apply to an OPEN
 * batch only.
 *
 * Each outcome applies only if the file is still at `version` and, when `worker` is given, still leased
 * to that worker (with `worker` null, the reconciler's view, it applies to a PENDING or PROCESSING file
 * whoever holds it). Applying clears the lease, sets the duration, counts an unsuccessful attempt in
 * retry_count, closes the attempt (SUCCESS, FAILED, or RETRY for PENDING) and updates the version's
 * history. A `batch` still OPEN becomes `batch.state`. Returns the ids of the files updated.
 *
 * @throws InvalidInputError on a malformed outcome or batch.
 */
export async function recordOutcomes(
  db: Database,
  input: {
    worker: string | null;
    outcomes: Outcome[];
    batch?: {
      id: string;
      state: "COMMITTED" | "FAILED" | "ABANDONED";
      snapshotId?: string;
      errorMessage?: string;
    };
  },
): Promise<{ applied: number[] }> {
  if (input.worker !== null) requireText("worker", input.worker);
  const { ids, versions } = requireRefs("outcomes", input.outcomes);
  input.outcomes.forEach((o, i) => {
    requireOneOf(`outcomes[${i}].status`, o.status, OUTCOME_STATUSES);
    if (o.recordsIngested !== undefined) requireCount(`outcomes[${i}].recordsIngested`, o.recordsIngested);
    if (o.bytesRead !== undefined) requireCount(`outcomes[${i}].bytesRead`, o.bytesRead);
    if (o.snapshotId !== undefined) requireInt64(`outcomes[${i}].snapshotId`, o.snapshotId);
    if (o.batchId !== undefined) requireUuid(`outcomes[${i}].batchId`, o.batchId);
  });
  const batch = input.batch;
  if (batch) {
    requireUuid("batch.id", batch.id);
    requireOneOf("batch.state", batch.state, BATCH_STATES);
    if (batch.snapshotId !== undefined) requireInt64("batch.snapshotId", batch.snapshotId);
  } else if (ids.length === 0) {
    return { applied: [] };
  }
  const column = <K extends keyof Outcome>(key: K) => input.outcomes.map((o) => o[key] ?? null);
  return runOperation("recordOutcomes", async () => {
    const { rows } = await db.pool.query<{ id: string }>(RECORD_OUTCOMES_SQL, [
      input.worker,
      ids,
      versions,
      column("status"),
      column("recordsIngested"),
      column("bytesRead"),
      column("snapshotId"),
      column("batchId"),
      column("errorType"),
      column("errorMessage"),
      batch?.id ?? null,
      batch?.state ?? null,
      batch?.snapshotId ?? null,
      batch?.errorMessage ?? null,
      input.outcomes.map((o) => o.counted ?? true),
    ]);
    return { applied: rows.map((row) => toNumber(row.id)) };
  });
}
