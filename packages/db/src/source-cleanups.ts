import { InvalidInputError } from "@lakeferry/core";
import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import { requireCount, requireId, requireUuid, toNumber } from "./values.ts";

/** What became of a file version's source object. */
export type SourceCleanupAction =
  "moved" | "deleted" | "already_gone" | "kept_changed" | "kept_outside_source";
export const SOURCE_CLEANUP_ACTIONS: readonly SourceCleanupAction[] = [
  "moved",
  "deleted",
  "already_gone",
  "kept_changed",
  "kept_outside_source",
];

/** A committed batch whose source objects are due for cleanup, and where a chunked walk resumes. */
export interface DueCleanupBatch {
  id: string;
  resolvedAt: Date;
}

/** A file version whose source object is due for cleanup: SUCCESS, written by a committed batch. */
export interface DueCleanupFile {
  fileId: number;
  version: number;
  batchId: string;
  path: string;
  /** The size and etag the version was ingested with: an object that no longer has them is left alone. */
  size: number;
  etag: string;
  /** Tries that failed so far. */
  failedAttempts: number;
}

/**
 * Up to `limit` committed batches of the ingestion, oldest commit first, committed more than `olderThanMs`
 * ago and not yet marked cleaned, after the `after` cursor; and the file versions of those batches whose
 * source object is still to be cleaned (SUCCESS from that batch, not superseded by a newer version, not
 * cleaned yet). Batches come from `write_batches_sources_due_idx`, one entry per batch.
 */
export async function dueSourceCleanups(
  db: Database,
  input: { ingestionId: number; olderThanMs: number; limit: number; after?: DueCleanupBatch },
): Promise<{ batches: DueCleanupBatch[]; files: DueCleanupFile[] }> {
  requireId("ingestionId", input.ingestionId);
  requireCount("olderThanMs", input.olderThanMs);
  requireCount("limit", input.limit, 1);
  if (input.after) requireUuid("after.id", input.after.id);
  return runOperation("dueSourceCleanups", async () => {
    const batches = await db.pool.query<{ id: string; resolvedAt: Date }>(
      `SELECT id, resolved_at AS "resolvedAt" FROM write_batches
       WHERE ingestion_id = $1 AND state = 'COMMITTED' AND sources_cleaned_at IS NULL
         AND resolved_at < now() - $2::float8 * interval '1 millisecond'
         AND ($3::timestamptz IS NULL OR (resolved_at, id) > ($3::timestamptz, $4::uuid))
       ORDER BY resolved_at, id
       LIMIT $5`,
      [
        input.ingestionId,
        input.olderThanMs,
        input.after?.resolvedAt ?? null,
        input.after?.id ?? null,
        input.limit,
      ],
    );
    if (batches.rows.length === 0) return { batches: [], files: [] };
    const files = await db.pool.query<{
      fileId: string;
      version: number;
      batchId: string;
      path: string;
      size: string;
      etag: string;
      failedAttempts: number;
    }>(
      `SELECT pf.id AS "fileId", pf.version, wbf.batch_id AS "batchId", pf.file_path AS path,
         pf.file_size AS size, pf.etag, coalesce(sc.attempts, 0) AS "failedAttempts"
       FROM write_batch_files wbf
       JOIN processed_files pf
         ON pf.id = wbf.file_id AND pf.version = wbf.version AND pf.batch_id = wbf.batch_id
        AND pf.status = 'SUCCESS'
       LEFT JOIN source_cleanups sc ON sc.file_id = pf.id AND sc.version = pf.version
       WHERE wbf.batch_id = ANY($1::uuid[]) AND sc.cleaned_at IS NULL
       ORDER BY pf.id`,
      [batches.rows.map((b) => b.id)],
    );
    return {
      batches: batches.rows,
      files: files.rows.map((row) => ({
        fileId: toNumber(row.fileId),
        version: row.version,
        batchId: row.batchId,
        path: row.path,
        size: toNumber(row.size),
        etag: row.etag,
        failedAttempts: row.failedAttempts,
      })),
    };
  });
}

/** One try at a file version's source object: what it did, or why it failed. */
export type SourceCleanupOutcome =
  | {
      fileId: number;
      version: number;
      batchId: string;
      action: SourceCleanupAction;
      /** Where a moved object went. */
      movedTo?: string;
    }
  | { fileId: number; version: number; batchId: string; error: string };

/**
 * Records tries at source objects (one row per file version, counting tries; a failure keeps an earlier
 * success, which never happens twice): a version with an action is done; one with an error only is tried
 * again by the next pass.
 */
export async function recordSourceCleanups(db: Database, outcomes: SourceCleanupOutcome[]): Promise<void> {
  if (outcomes.length === 0) return;
  for (const outcome of outcomes) {
    requireId("fileId", outcome.fileId);
    requireCount("version", outcome.version, 1);
    requireUuid("batchId", outcome.batchId);
    if ("action" in outcome && !SOURCE_CLEANUP_ACTIONS.includes(outcome.action)) {
      throw new InvalidInputError("action", `must be one of ${SOURCE_CLEANUP_ACTIONS.join(", ")}`);
    }
  }
  const done = (o: SourceCleanupOutcome): o is Extract<SourceCleanupOutcome, { action: unknown }> =>
    "action" in o;
  await runOperation("recordSourceCleanups", async () => {
    await db.pool.query(
      `INSERT INTO source_cleanups AS sc
         (file_id, version, batch_id, action, cleaned_at, moved_to, attempts, last_tried_at, error_message)
       SELECT o.file_id, o.version, o.batch_id, o.action, CASE WHEN o.action IS NULL THEN NULL ELSE now() END,
         o.moved_to, 1, now(), o.error_message
       FROM unnest($1::bigint[], $2::int[], $3::uuid[], $4::text[], $5::text[], $6::text[])
         AS o(file_id, version, batch_id, action, moved_to, error_message)
       ON CONFLICT (file_id, version) DO UPDATE SET
         action = coalesce(sc.action, EXCLUDED.action),
         cleaned_at = coalesce(sc.cleaned_at, EXCLUDED.cleaned_at),
         moved_to = coalesce(sc.moved_to, EXCLUDED.moved_to),
         attempts = sc.attempts + 1,
         last_tried_at = now(),
         error_message = coalesce(EXCLUDED.error_message, sc.error_message)`,
      [
        outcomes.map((o) => o.fileId),
        outcomes.map((o) => o.version),
        outcomes.map((o) => o.batchId),
        outcomes.map((o) => (done(o) ? o.action : null)),
        outcomes.map((o) => (done(o) ? (o.movedTo ?? null) : null)),
        outcomes.map((o) => (done(o) ? null : o.error)),
      ],
    );
  });
}

/**
 * Marks cleaned those of `batchIds` that have no file version left to clean (all cleaned, or superseded by a
 * newer version, which its own batch will clean). Returns the ids marked.
 */
export async function markSourcesCleaned(db: Database, batchIds: string[]): Promise<string[]> {
  if (batchIds.length === 0) return [];
  for (const id of batchIds) requireUuid("batchIds", id);
  return runOperation("markSourcesCleaned", async () => {
    const { rows } = await db.pool.query<{ id: string }>(
      `UPDATE write_batches wb SET sources_cleaned_at = now()
       WHERE wb.id = ANY($1::uuid[]) AND wb.state = 'COMMITTED' AND wb.sources_cleaned_at IS NULL
         AND NOT EXISTS (
           SELECT 1 FROM write_batch_files wbf
           JOIN processed_files pf
             ON pf.id = wbf.file_id AND pf.version = wbf.version AND pf.batch_id = wbf.batch_id
            AND pf.status = 'SUCCESS'
           LEFT JOIN source_cleanups sc ON sc.file_id = pf.id AND sc.version = pf.version
           WHERE wbf.batch_id = wb.id AND sc.cleaned_at IS NULL)
       RETURNING wb.id`,
      [batchIds],
    );
    return rows.map((row) => row.id);
  });
}

/** A file version's source cleanup record, as stored. */
export interface SourceCleanupRecord {
  fileId: number;
  version: number;
  batchId: string;
  action: SourceCleanupAction | null;
  cleanedAt: Date | null;
  movedTo: string | null;
  attempts: number;
  lastTriedAt: Date;
  errorMessage: string | null;
}

/** The cleanup records of the ingestion's files (every version tried), by file id and version. */
export async function listSourceCleanups(
  db: Database,
  input: { ingestionId: number; fileIds?: number[] },
): Promise<SourceCleanupRecord[]> {
  requireId("ingestionId", input.ingestionId);
  return runOperation("listSourceCleanups", async () => {
    const { rows } = await db.pool.query<Omit<SourceCleanupRecord, "fileId"> & { fileId: string }>(
      `SELECT sc.file_id AS "fileId", sc.version, sc.batch_id AS "batchId", sc.action,
         sc.cleaned_at AS "cleanedAt", sc.moved_to AS "movedTo", sc.attempts, sc.last_tried_at AS "lastTriedAt",
         sc.error_message AS "errorMessage"
       FROM source_cleanups sc JOIN processed_files pf ON pf.id = sc.file_id
       WHERE pf.ingestion_id = $1 AND ($2::bigint[] IS NULL OR sc.file_id = ANY($2::bigint[]))
       ORDER BY sc.file_id, sc.version`,
      [input.ingestionId, input.fileIds ?? null],
    );
    return rows.map((row) => ({ ...row, fileId: toNumber(row.fileId) }));
  });
}
