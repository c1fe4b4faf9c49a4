import type pg from "pg";
import { inTransaction, type Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import type { BatchState, Outcome } from "./types.ts";
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

const OUTCOME_STATUSES = ["SUCCESS", "FAILED", "SKIPPED", "PENDING"] as const;
const BATCH_STATES = ["COMMITTED", "FAILED", "ABANDONED"] as const;

/*
 * recordOutcomes runs the statements below in one transaction, each only when it has something to do. The
 * file rows the outcomes apply to are locked first, in id order (as claimFiles and beginPublish lock them, so
 * they queue rather than deadlock), and re-checked against their committed state, so an outcome racing a
 * takeover or a new version loses cleanly. The statements after the lock touch only the locked files, except
 * the one closing a worker's stale attempts, and copy the files' new state into attempts and versions found
 * by `= ANY` of the file ids, not by joining an unnest of them: a planner that believes few attempts are open
 * (statistics taken while none were) would scan the whole table for them and the unnest once per attempt.
 */

/** Outcomes recorded with a COMMITTED batch apply only once it was decided: never while it may be abandoned. */
const BATCH_STATE_SQL = `SELECT state FROM write_batches WHERE id = $1`;

/** The named versions the worker still holds. */
const LOCK_HELD_SQL = `
SELECT pf.id FROM processed_files pf
JOIN unnest($1::bigint[], $2::int[]) AS o(id, version) ON o.id = pf.id AND o.version = pf.version
WHERE pf.status = 'PROCESSING' AND pf.lease_owner = $3
ORDER BY pf.id
FOR UPDATE OF pf`;

/**
 * The reconciler's view: the named versions still PENDING or PROCESSING, whoever holds them, and FAILED ones
 * turned SUCCESS by the batch they were written in (found committed after its writer gave up on the file:
 * the rows are there).
 */
const LOCK_UNSETTLED_SQL = `
SELECT pf.id FROM processed_files pf
JOIN unnest($1::bigint[], $2::int[], $3::file_status[], $4::uuid[]) AS o(id, version, status, batch_id)
  ON o.id = pf.id AND o.version = pf.version
WHERE pf.status IN ('PENDING', 'PROCESSING')
   OR (pf.status = 'FAILED' AND o.status = 'SUCCESS' AND pf.batch_id = o.batch_id)
ORDER BY pf.id
FOR UPDATE OF pf`;

/** Settles the locked files: the outcome, the duration, the lease cleared. A retry keeps the last processed_at. */
const SETTLE_FILES_SQL = `
UPDATE processed_files pf SET
  status = o.status,
  processed_at = CASE WHEN o.status = 'PENDING' THEN pf.processed_at ELSE now() END,
  processing_duration_ms = (extract(epoch FROM now() - pf.processing_started_at) * 1000)::int,
  records_ingested = o.records_ingested, bytes_read = o.bytes_read, snapshot_id = o.snapshot_id,
  batch_id = COALESCE(o.batch_id, pf.batch_id), error_type = o.error_type, error_message = o.error_message,
  retry_count = pf.retry_count + o.spent,
  records_parsed = o.records_parsed, records_rejected = o.records_rejected, first_error = o.first_error,
  lease_owner = NULL, lease_expires_at = NULL, updated_at = now()
FROM unnest($1::bigint[], $2::file_status[], $3::bigint[], $4::bigint[], $5::bigint[], $6::uuid[], $7::text[],
            $8::text[], $9::int[], $10::bigint[], $11::bigint[], $12::text[])
  AS o(id, status, records_ingested, bytes_read, snapshot_id, batch_id, error_type, error_message, spent,
       records_parsed, records_rejected, first_error)
WHERE pf.id = o.id`;

/**
 * A batch found committed after its writer gave up on it (a transient error after the commit; a crashed
 * writer stays LOST): the first attempt that wrote it did succeed, whichever attempt or reconciler found out.
 * Runs before the open attempts close, so it sees only attempts that had ended.
 */
const WRITER_ATTEMPT_SUCCEEDED_SQL = `
UPDATE file_attempts fa SET outcome = 'SUCCESS', error_type = NULL, error_message = NULL,
  records_ingested = pf.records_ingested
FROM processed_files pf
WHERE fa.file_id = ANY($1::bigint[]) AND pf.id = fa.file_id AND fa.version = pf.version
  AND fa.finished_at IS NOT NULL AND fa.outcome IN ('RETRY', 'FAILED')
  AND fa.attempt = (SELECT min(first.attempt) FROM file_attempts first
                    WHERE first.file_id = pf.id AND first.version = pf.version AND first.batch_id = pf.batch_id)`;

/**
 * Closes each settled file's open attempt as the file now stands: SUCCESS, FAILED, SKIPPED, or RETRY for
 * PENDING.
 * `$2` names the files whose failure does not count (an outage's).
 */
const CLOSE_ATTEMPTS_SQL = `
UPDATE file_attempts fa SET finished_at = now(),
  outcome = CASE pf.status WHEN 'SUCCESS' THEN 'SUCCESS' WHEN 'FAILED' THEN 'FAILED' WHEN 'SKIPPED' THEN 'SKIPPED'
    ELSE 'RETRY' END::attempt_outcome,
  error_type = pf.error_type, error_message = pf.error_message, records_ingested = pf.records_ingested,
  batch_id = COALESCE(pf.batch_id, fa.batch_id), counted = fa.file_id <> ALL($2::bigint[]),
  duration_ms = (extract(epoch FROM now() - fa.started_at) * 1000)::int
FROM processed_files pf
WHERE fa.file_id = ANY($1::bigint[]) AND pf.id = fa.file_id AND fa.version = pf.version AND fa.attempt = pf.attempts
  AND fa.finished_at IS NULL`;

/** Copies each settled file's state into its version's history. */
const RECORD_VERSIONS_SQL = `
UPDATE file_versions fv SET status = pf.status, records_ingested = pf.records_ingested,
  records_parsed = pf.records_parsed, records_rejected = pf.records_rejected, first_error = pf.first_error,
  snapshot_id = pf.snapshot_id, batch_id = pf.batch_id, processed_at = pf.processed_at,
  error_type = pf.error_type, error_message = pf.error_message
FROM processed_files pf
WHERE fv.file_id = ANY($1::bigint[]) AND pf.id = fv.file_id AND fv.version = pf.version`;

/**
 * A worker's outcome that did not apply still closes that worker's open attempt of the version, as LOST; but
 * not a claim the worker holds now, which it made after the outcomes were locked and the outcome is not about.
 * (`= ANY` finds the attempts by index rather than among every open one.)
 */
const CLOSE_STALE_ATTEMPTS_SQL = `
UPDATE file_attempts fa SET finished_at = now(), outcome = 'LOST', error_type = '${STALE_OUTCOME}',
  error_message = 'the outcome (' || o.status || ') arrived after the lease was lost or the file changed',
  duration_ms = (extract(epoch FROM now() - fa.started_at) * 1000)::int
FROM unnest($2::bigint[], $3::int[], $4::text[]) AS o(id, version, status) JOIN processed_files pf ON pf.id = o.id
WHERE fa.file_id = ANY($2::bigint[]) AND fa.file_id = o.id AND fa.version = o.version AND fa.worker = $1
  AND fa.finished_at IS NULL
  AND NOT (pf.status = 'PROCESSING' AND pf.lease_owner = $1 AND pf.version = fa.version AND pf.attempts = fa.attempt)`;

/** Only a PUBLISHING batch (published through the fence) becomes COMMITTED. */
const COMMIT_BATCH_SQL = `
UPDATE write_batches SET state = 'COMMITTED', resolved_at = now(), snapshot_id = $2, error_message = $3
WHERE id = $1 AND state = 'PUBLISHING'`;

/** Only an OPEN batch (never published) becomes FAILED or ABANDONED. */
const GIVE_UP_BATCH_SQL = `
UPDATE write_batches SET state = $2::batch_state, resolved_at = now(), snapshot_id = $3, error_message = $4
WHERE id = $1 AND state = 'OPEN'`;

/**
 * Integers as a Postgres array literal (`{1,2,3}`) for an `int[]` or `bigint[]` parameter. pg quotes and
 * escapes each element of a JS array as a string: for a thousand-file batch's ids, sent to several
 * statements, that was most of recordOutcomes' own CPU.
 */
function integers(values: number[]): string {
  return `{${values.join(",")}}`;
}

/** An outcome as the file's row records it, the batch's defaults applied. */
interface Settlement {
  id: number;
  version: number;
  status: Outcome["status"];
  recordsIngested: number | null;
  recordsParsed: number | null;
  recordsRejected: number | null;
  firstError: string | null;
  bytesRead: number | null;
  /** Only a SUCCESS has a snapshot. */
  snapshotId: string | null;
  batchId: string | null;
  /** A SUCCESS clears the error. */
  errorType: string | null;
  errorMessage: string | null;
  /** Whether the attempt counts: a SUCCESS always does, a SKIPPED never, a failure unless `counted` is false. */
  counted: boolean;
}

/**
 * Records how attempts ended, and resolves their write batch, in one transaction.
 *
 * A COMMITTED batch must be PUBLISHING (published through the fence): until it was decided (PUBLISHING, or
 * COMMITTED already), none of the outcomes recorded with it applies. FAILED and ABANDONED apply to an OPEN
 * batch only.
 *
 * Each outcome applies only if the file is still at `version` and, when `worker` is given, still leased
 * to that worker (with `worker` null, the reconciler's view, it applies to a PENDING or PROCESSING file
 * whoever holds it, and a SUCCESS also to a FAILED file written in the same batch). Applying clears the
 * lease, sets the duration, counts an unsuccessful attempt in retry_count (unless `counted` is false), closes
 * the attempt (SUCCESS, FAILED, or RETRY for PENDING) and updates the version's history; a SUCCESS from a
 * batch also marks SUCCESS the batch's writing attempt that had given up. A worker's outcome that does not
 * apply closes that worker's open attempt of the version as LOST ({@link STALE_OUTCOME}). Returns the ids of
 * the files updated, in id order.
 *
 * Short statements, each run only when it has something to do (a committed batch of any size takes seven:
 * the batch's state, the lock, the files, the writer attempts, the open attempts, the versions, the batch).
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
  const worker = input.worker;
  if (worker !== null) requireText("worker", worker);
  const { ids } = requireRefs("outcomes", input.outcomes);
  input.outcomes.forEach((o, i) => {
    requireOneOf(`outcomes[${i}].status`, o.status, OUTCOME_STATUSES);
    if (o.recordsIngested !== undefined) requireCount(`outcomes[${i}].recordsIngested`, o.recordsIngested);
    if (o.bytesRead !== undefined) requireCount(`outcomes[${i}].bytesRead`, o.bytesRead);
    if (o.recordsParsed !== undefined) requireCount(`outcomes[${i}].recordsParsed`, o.recordsParsed);
    if (o.recordsRejected !== undefined) requireCount(`outcomes[${i}].recordsRejected`, o.recordsRejected);
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
  const settlements = input.outcomes.map((o): Settlement => {
    const success = o.status === "SUCCESS";
    return {
      id: o.id,
      version: o.version,
      status: o.status,
      recordsIngested: o.recordsIngested ?? null,
      recordsParsed: o.recordsParsed ?? null,
      recordsRejected: o.recordsRejected ?? null,
      firstError: o.firstError ?? null,
      bytesRead: o.bytesRead ?? null,
      snapshotId: success ? (o.snapshotId ?? batch?.snapshotId ?? null) : null,
      batchId: o.batchId ?? batch?.id ?? null,
      errorType: success ? null : (o.errorType ?? null),
      errorMessage: success ? null : (o.errorMessage ?? null),
      counted: success || (o.status !== "SKIPPED" && (o.counted ?? true)),
    };
  });

  return runOperation("recordOutcomes", () =>
    inTransaction(db, async (client) => {
      // Whether the outcomes may apply, and whether the batch can still change: a COMMITTED batch is
      // recorded only once decided, and read before any file is touched (with no outcome, its own
      // statement's condition is enough).
      let decided = true;
      let resolvable = batch !== undefined;
      if (batch?.state === "COMMITTED" && settlements.length > 0) {
        const { rows } = await client.query<{ state: BatchState }>(BATCH_STATE_SQL, [batch.id]);
        const state = rows[0]?.state;
        decided = state === "PUBLISHING" || state === "COMMITTED";
        resolvable = state === "PUBLISHING";
      }
      const applied = decided && settlements.length > 0 ? await lockFiles(client, worker, settlements) : [];

      const appliedIds = new Set(applied);
      const settled = settlements.filter((s) => appliedIds.has(s.id));
      if (settled.length > 0) await settleFiles(client, settled);
      const stale = settlements.filter((s) => !appliedIds.has(s.id));
      if (worker !== null && stale.length > 0) {
        await client.query(CLOSE_STALE_ATTEMPTS_SQL, [
          worker,
          integers(stale.map((s) => s.id)),
          integers(stale.map((s) => s.version)),
          stale.map((s) => s.status),
        ]);
      }

      if (batch && resolvable) {
        if (batch.state === "COMMITTED") {
          await client.query(COMMIT_BATCH_SQL, [
            batch.id,
            batch.snapshotId ?? null,
            batch.errorMessage ?? null,
          ]);
        } else {
          await client.query(GIVE_UP_BATCH_SQL, [
            batch.id,
            batch.state,
            batch.snapshotId ?? null,
            batch.errorMessage ?? null,
          ]);
        }
      }
      return { applied };
    }),
  );
}

/** Locks the files the outcomes apply to, in id order; returns their ids in that order. */
async function lockFiles(
  client: pg.PoolClient,
  worker: string | null,
  settlements: Settlement[],
): Promise<number[]> {
  const ids = integers(settlements.map((s) => s.id));
  const versions = integers(settlements.map((s) => s.version));
  const { rows } =
    worker === null
      ? await client.query<{ id: string }>(LOCK_UNSETTLED_SQL, [
          ids,
          versions,
          settlements.map((s) => s.status),
          settlements.map((s) => s.batchId),
        ])
      : await client.query<{ id: string }>(LOCK_HELD_SQL, [ids, versions, worker]);
  return rows.map((row) => toNumber(row.id));
}

/** Updates the locked files, then their attempts and version history from the files' new state. */
async function settleFiles(client: pg.PoolClient, settled: Settlement[]): Promise<void> {
  const ids = integers(settled.map((s) => s.id));
  await client.query(SETTLE_FILES_SQL, [
    ids,
    settled.map((s) => s.status),
    settled.map((s) => s.recordsIngested),
    settled.map((s) => s.bytesRead),
    settled.map((s) => s.snapshotId),
    settled.map((s) => s.batchId),
    settled.map((s) => s.errorType),
    settled.map((s) => s.errorMessage),
    integers(settled.map((s) => (s.counted && s.status !== "SUCCESS" ? 1 : 0))),
    settled.map((s) => s.recordsParsed),
    settled.map((s) => s.recordsRejected),
    settled.map((s) => s.firstError),
  ]);
  const succeeded = settled.filter((s) => s.status === "SUCCESS").map((s) => s.id);
  if (succeeded.length > 0) await client.query(WRITER_ATTEMPT_SUCCEEDED_SQL, [integers(succeeded)]);
  const uncounted = settled.filter((s) => !s.counted).map((s) => s.id);
  await client.query(CLOSE_ATTEMPTS_SQL, [ids, integers(uncounted)]);
  await client.query(RECORD_VERSIONS_SQL, [ids]);
}
