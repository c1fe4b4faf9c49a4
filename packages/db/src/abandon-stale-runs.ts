import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import { IGNORED_CHANGE } from "./register-files.ts";
import { requireCount } from "./values.ts";

/** `error_type` of a run closed because its process stopped before finishing it. */
export const RUN_ABANDONED = "RUN_ABANDONED";

/** `error_message` of such a run: what happened, and that nothing it registered is lost. */
export const RUN_ABANDONED_MESSAGE =
  "abandoned: its process stopped before finishing; files it registered are queued as usual";

/** A run closed by {@link abandonStaleRuns}. */
export interface AbandonedRun {
  id: number;
  ingestionId: number;
  trigger: "schedule" | "manual" | "upstream";
  startedAt: Date;
  /** File versions it had registered as new, and as changed (what its counts now say). */
  filesNew: number;
  filesModified: number;
}

/*
 * Locks the stale runs (skipping any a finishing process holds) and closes each, its counts taken from the
 * file versions it registered: its own tally died with its process.
 */
const ABANDON_SQL = `
WITH stale AS MATERIALIZED (
  SELECT id FROM runs
  WHERE status = 'running'
    AND started_at < now() - (CASE WHEN trigger = 'upstream' THEN $1 ELSE $2 END)::float8
                             * interval '1 millisecond'
  ORDER BY started_at
  LIMIT $3
  FOR UPDATE SKIP LOCKED
),
registered AS (
  SELECT s.id,
         count(fv.run_id) FILTER (WHERE fv.version = 1)::int AS files_new,
         count(fv.run_id) FILTER (WHERE fv.version > 1
                                  AND fv.error_type IS DISTINCT FROM '${IGNORED_CHANGE}')::int AS files_modified
  FROM stale s LEFT JOIN file_versions fv ON fv.run_id = s.id
  GROUP BY s.id
)
UPDATE runs r SET status = 'failed', finished_at = now(), error_type = $4, error_message = $5,
  files_new = g.files_new, files_modified = g.files_modified,
  files_found = GREATEST(r.files_found, g.files_new + g.files_modified)
FROM registered g
WHERE r.id = g.id AND r.status = 'running'
RETURNING r.id, r.ingestion_id AS "ingestionId", r.trigger, r.started_at AS "startedAt",
          r.files_new AS "filesNew", r.files_modified AS "filesModified"`;

/**
 * Closes runs still `running` long after they started: their process died, or lost Postgres, between
 * `startRun` and `finishRun`. Submissions (`upstream`) are judged after `upstreamOlderThanMs`, discovery
 * passes (`schedule`, `manual`) after `discoveryOlderThanMs`. Each is recorded `failed` with
 * {@link RUN_ABANDONED} and {@link RUN_ABANDONED_MESSAGE}; the files it registered are PENDING rows like any
 * others. A run whose process was only slow and finishes later records its own outcome over this one.
 * At most `limit` (default 100) runs per call, oldest first.
 */
export async function abandonStaleRuns(
  db: Database,
  input: { upstreamOlderThanMs: number; discoveryOlderThanMs: number; limit?: number },
): Promise<AbandonedRun[]> {
  requireCount("upstreamOlderThanMs", input.upstreamOlderThanMs);
  requireCount("discoveryOlderThanMs", input.discoveryOlderThanMs);
  const limit = requireCount("limit", input.limit ?? 100, 1);
  return runOperation("abandonStaleRuns", async () => {
    const { rows } = await db.pool.query<
      Omit<AbandonedRun, "id" | "ingestionId"> & {
        id: string;
        ingestionId: string;
      }
    >(ABANDON_SQL, [
      input.upstreamOlderThanMs,
      input.discoveryOlderThanMs,
      limit,
      RUN_ABANDONED,
      RUN_ABANDONED_MESSAGE,
    ]);
    return rows.map((row) => ({ ...row, id: Number(row.id), ingestionId: Number(row.ingestionId) }));
  });
}
