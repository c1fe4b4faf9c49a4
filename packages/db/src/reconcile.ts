import { InvalidInputError } from "@lakeferry/core";
import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import type { FileRef } from "./types.ts";
import { LEASE_EXPIRED } from "./claim-files.ts";
import { requireCount, requireId, requireText, toNumber } from "./values.ts";

interface FileRefRow {
  id: string;
  version: number;
  file_path: string;
  ingestion_id: string;
}

function toRef(row: FileRefRow): FileRef & { ingestionId: number } {
  return {
    id: toNumber(row.id),
    version: row.version,
    path: row.file_path,
    ingestionId: toNumber(row.ingestion_id),
  };
}

/**
 * Hands files whose lease expired back to the queue: PROCESSING past `lease_expires_at` and not in an OPEN
 * or PUBLISHING write batch (those wait for the batch to be resolved: it may still be published) become
 * PENDING, and the attempt is closed as LOST. Rows locked by someone else are skipped this round.
 * Returns the reclaimed versions to re-enqueue (at most `limit`, default 1000).
 */
export async function reclaimExpiredLeases(
  db: Database,
  input: { limit?: number } = {},
): Promise<(FileRef & { ingestionId: number })[]> {
  const limit = requireCount("limit", input.limit ?? 1000, 1);
  return runOperation("reclaimExpiredLeases", async () => {
    const { rows } = await db.pool.query<FileRefRow>(
      `WITH expired AS MATERIALIZED (
         SELECT pf.id FROM processed_files pf
         WHERE pf.status = 'PROCESSING' AND pf.lease_expires_at < now()
           AND NOT EXISTS (
             SELECT 1 FROM write_batch_files wbf JOIN write_batches wb ON wb.id = wbf.batch_id
             WHERE wbf.file_id = pf.id AND wbf.version = pf.version AND wb.state IN ('OPEN', 'PUBLISHING'))
         ORDER BY pf.id
         LIMIT $1
         FOR UPDATE OF pf SKIP LOCKED
       ),
       reclaimed AS (
         UPDATE processed_files pf SET status = 'PENDING', lease_owner = NULL, lease_expires_at = NULL,
           updated_at = now()
         FROM expired WHERE pf.id = expired.id
         RETURNING pf.id, pf.version, pf.file_path, pf.ingestion_id
       ),
       lost AS (
         UPDATE file_attempts fa SET finished_at = now(), outcome = 'LOST', error_type = '${LEASE_EXPIRED}',
           error_message = 'the lease expired before an outcome was recorded',
           duration_ms = (extract(epoch FROM now() - fa.started_at) * 1000)::int
         FROM reclaimed r
         WHERE fa.file_id = r.id AND fa.version = r.version AND fa.finished_at IS NULL
       )
       SELECT id, version, file_path, ingestion_id FROM reclaimed ORDER BY id`,
      [limit],
    );
    return rows.map(toRef);
  });
}

/**
 * PENDING files in id order, for the reconciler's full sweep (enqueueing is idempotent per file version).
 * `afterId` pages; `olderThanMs` leaves out files that changed state more recently than that (their jobs
 * are probably on their way).
 */
export async function pendingFiles(
  db: Database,
  input: { limit: number; afterId?: number; olderThanMs?: number },
): Promise<(FileRef & { ingestionId: number })[]> {
  requireCount("limit", input.limit, 1);
  if (input.afterId !== undefined) requireCount("afterId", input.afterId);
  if (input.olderThanMs !== undefined) requireCount("olderThanMs", input.olderThanMs);
  return runOperation("pendingFiles", async () => {
    const { rows } = await db.pool.query<FileRefRow>(
      `SELECT id, version, file_path, ingestion_id FROM processed_files
       WHERE status = 'PENDING' AND id > $1
         AND ($2::float8 IS NULL OR updated_at < now() - $2::float8 * interval '1 millisecond')
       ORDER BY id
       LIMIT $3`,
      [input.afterId ?? 0, input.olderThanMs ?? null, input.limit],
    );
    return rows.map(toRef);
  });
}

/** Where {@link changedPendingFiles} resumes: the last row's `changedAt` and id. */
export interface ChangedPendingCursor {
  /** The row's `updated_at`, exactly (microseconds), as Postgres printed it. */
  changedAt: string;
  id: number;
}

/**
 * PENDING files whose row changed at or after `since` (and, with `olderThanMs`, longer ago than that), in
 * (`updated_at`, id) order, at most `limit`: the reconciler's look at what changed since its last pass,
 * instead of every PENDING row. `after` pages (pass the last row's {@link ChangedPendingCursor}).
 * Relies on every statement that makes a row PENDING setting `updated_at = now()` (they all do); served
 * by the partial index `processed_files_pending_changed_idx`.
 */
export async function changedPendingFiles(
  db: Database,
  input: { since: Date; limit: number; olderThanMs?: number; after?: ChangedPendingCursor },
): Promise<(FileRef & { ingestionId: number; changedAt: string })[]> {
  if (!(input.since instanceof Date) || Number.isNaN(input.since.getTime())) {
    throw new InvalidInputError("since", "must be a valid Date");
  }
  requireCount("limit", input.limit, 1);
  if (input.olderThanMs !== undefined) requireCount("olderThanMs", input.olderThanMs);
  if (input.after !== undefined) {
    requireText("after.changedAt", input.after.changedAt);
    requireCount("after.id", input.after.id);
  }
  return runOperation("changedPendingFiles", async () => {
    const { rows } = await db.pool.query<FileRefRow & { changed_at: string }>(
      `SELECT id, version, file_path, ingestion_id, updated_at::text AS changed_at FROM processed_files
       WHERE status = 'PENDING' AND (updated_at, id) > ($1::timestamptz, $2::bigint)
         AND ($3::float8 IS NULL OR updated_at < now() - $3::float8 * interval '1 millisecond')
       ORDER BY updated_at, id
       LIMIT $4`,
      [input.after?.changedAt ?? input.since, input.after?.id ?? 0, input.olderThanMs ?? null, input.limit],
    );
    return rows.map((row) => ({ ...toRef(row), changedAt: row.changed_at }));
  });
}

/** The database's clock (`now()`): watermarks over `updated_at` are read from it, never from a host's. */
export async function databaseNow(db: Database): Promise<Date> {
  return runOperation("databaseNow", async () => {
    const { rows } = await db.pool.query<{ now: Date }>("SELECT now() AS now");
    const now = rows[0]?.now;
    if (!(now instanceof Date)) throw new Error("SELECT now() returned no timestamp");
    return now;
  });
}

/**
 * Puts files back to PENDING for another try, at the same version, keeping their attempt and retry
 * counts and last error: with `path`, that file if it is settled (SUCCESS, FAILED or SKIPPED; only FAILED
 * with `failedOnly`); with `fileIds`, those of the ingestion's files that are FAILED or SKIPPED (only FAILED
 * with `failedOnly`; never SUCCESS, whose rows are in the table already); with neither, every FAILED file
 * of the ingestion. The file's batch id is cleared, so the
 * next attempt writes again instead of trusting an earlier commit, unless that batch may still become
 * visible (OPEN or PUBLISHING): then the next claim settles it first. Returns the files reset.
 */
export async function resetFilesForRetry(
  db: Database,
  ingestionId: number,
  options: { failedOnly?: boolean; path?: string; fileIds?: readonly number[]; skippedFor?: string },
): Promise<FileRef[]> {
  requireId("ingestionId", ingestionId);
  options.fileIds?.forEach((id, index) => requireId(`fileIds[${index}]`, id));
  if (options.fileIds !== undefined && options.path !== undefined) {
    throw new InvalidInputError("fileIds", "give either a path or file ids, not both");
  }
  // `skippedFor`: the files SKIPPED with this error type (their cause removed, e.g. new columns approved).
  const statuses =
    options.skippedFor !== undefined
      ? ["SKIPPED"]
      : options.failedOnly
        ? ["FAILED"]
        : options.fileIds !== undefined
          ? ["FAILED", "SKIPPED"]
          : options.path !== undefined
            ? ["SUCCESS", "FAILED", "SKIPPED"]
            : ["FAILED"];
  // Files named by path or id are reached by the key or primary key index alone: with the ingestion named
  // plainly, stale statistics (a new ingestion) let the planner walk its whole (ingestion_id, status, id)
  // range instead (see files.ts). All of an ingestion's FAILED files are that range.
  const ofIngestion =
    options.path !== undefined || options.fileIds !== undefined
      ? "ingestion_id + 0 = $1"
      : "ingestion_id = $1";
  return runOperation("resetFilesForRetry", async () => {
    const { rows } = await db.pool.query<FileRefRow>(
      `WITH target AS MATERIALIZED (
         SELECT id FROM processed_files
         WHERE ${ofIngestion} AND status = ANY($2::file_status[])
           -- A path is found by its key alone (the unique index; \`ingestion_id + 0\`: see files.ts), then
           -- compared: a colliding path is not this file.
           AND ($3::text IS NULL OR id = (SELECT p.id FROM processed_files p
                                          WHERE file_path_key(p.ingestion_id, p.file_path)
                                                = file_path_key($1::bigint, $3::text)
                                            AND p.ingestion_id + 0 = $1 AND p.file_path = $3::text))
           AND ($4::bigint[] IS NULL OR id = ANY($4::bigint[]))
           AND ($5::text IS NULL OR error_type = $5::text)
         ORDER BY id
         FOR UPDATE
       ),
       reset AS (
         -- A batch that may still become visible (OPEN, PUBLISHING) stays, so the next claim settles it first.
         UPDATE processed_files pf SET status = 'PENDING', lease_owner = NULL,
           batch_id = CASE WHEN EXISTS (SELECT 1 FROM write_batches wb
                                        WHERE wb.id = pf.batch_id AND wb.state IN ('OPEN', 'PUBLISHING'))
                           THEN pf.batch_id END,
           lease_expires_at = NULL, updated_at = now()
         FROM target WHERE pf.id = target.id
         RETURNING pf.id, pf.version, pf.file_path, pf.ingestion_id
       ),
       history AS (
         UPDATE file_versions fv SET status = 'PENDING'
         FROM reset r WHERE fv.file_id = r.id AND fv.version = r.version
       )
       SELECT id, version, file_path, ingestion_id FROM reset ORDER BY id`,
      [
        ingestionId,
        statuses,
        options.path ?? null,
        options.fileIds ? [...options.fileIds] : null,
        options.skippedFor ?? null,
      ],
    );
    return rows.map((row) => {
      const { ingestionId: _ingestion, ...ref } = toRef(row);
      return ref;
    });
  });
}
