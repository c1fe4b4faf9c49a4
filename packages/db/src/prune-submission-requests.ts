import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import { requireCount } from "./values.ts";

/**
 * Deletes up to `limit` (default 1,000) of the oldest submission requests recorded more than `olderThanMs`
 * ago: past that, a request sent again with the same `requestId` is a new submission (its paths, already
 * registered, come back `already_known`). Rows another transaction holds are left for the next call.
 * Returns how many were deleted; fewer than `limit` means none older are left.
 */
export async function pruneSubmissionRequests(
  db: Database,
  input: { olderThanMs: number; limit?: number },
): Promise<number> {
  requireCount("olderThanMs", input.olderThanMs);
  const limit = requireCount("limit", input.limit ?? 1_000, 1);
  return runOperation("pruneSubmissionRequests", async () => {
    const { rowCount } = await db.pool.query(
      `DELETE FROM submission_requests sr
       USING (SELECT ingestion_id, request_id FROM submission_requests
              WHERE created_at < now() - $1::float8 * interval '1 millisecond'
              ORDER BY created_at
              LIMIT $2
              FOR UPDATE SKIP LOCKED) old
       WHERE sr.ingestion_id = old.ingestion_id AND sr.request_id = old.request_id`,
      [input.olderThanMs, limit],
    );
    return rowCount ?? 0;
  });
}
