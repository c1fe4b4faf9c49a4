import { InvalidInputError } from "@lakeferry/core";
import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import type { Refusal } from "./runs.ts";
import type { FileRef, FileStatus, ListedFile, ModifiedPolicy } from "./types.ts";
import { MODIFIED_POLICIES } from "./types.ts";
import { requireCount, requireId, requireOneOf, requireText, toNumber } from "./values.ts";

/** error_type of a file_versions row recording a change the `ignore` policy did not act on. */
export const IGNORED_CHANGE = "MODIFIED_IGNORED";
/** error_type of a version replaced by a newer one before it settled, and of the attempt it cut short. */
export const SUPERSEDED = "SUPERSEDED";

/*
 * One statement, so one round trip and one snapshot. Concurrent callers stay idempotent because every
 * write is guarded: new paths by ON CONFLICT DO NOTHING (the loser waits for the winner, then skips), new
 * versions by re-checking, after the row lock, that the file is still at the version this statement saw
 * (READ COMMITTED re-evaluates that condition against the committed row), ignored changes by the
 * (file_id, version) primary key. Rows are inserted in path order and locked in id order, as every other
 * writer does, so concurrent writers queue instead of deadlocking.
 *
 * A change is an etag or size that differs from the file's latest seen version (for `ignore`, that may be
 * a SKIPPED history row newer than the current version), so re-listing the same objects does nothing. The
 * current version is read from processed_files, never from its history row: pruning archives and deletes
 * settled history rows (the current version's too), and a file must not look changed, and be ingested
 * again, because its history is gone. New version numbers continue after the highest ever kept.
 *
 * Paths are found by their 128-bit key (`file_path_key`, the unique index) and then compared: a path whose
 * key another path holds is neither created nor taken for that path's file, but returned as collided. One
 * case goes unseen until the path is registered again: a colliding path inserted by a concurrent caller
 * after this statement's snapshot (its insert skips this path's row, its probe does not see it).
 */
const REGISTER_FILES_SQL = `
WITH listed AS (
  SELECT l.*, file_path_key($1::bigint, l.file_path) AS path_key
  FROM unnest($3::text[], $4::bigint[], $5::text[], $6::timestamptz[]) AS l(file_path, file_size, etag, modified_at)
),
inserted AS (
  INSERT INTO processed_files (ingestion_id, file_path, file_size, etag, modified_at, run_id)
  SELECT $1, file_path, file_size, etag, modified_at, $2 FROM listed ORDER BY file_path
  ON CONFLICT ((file_path_key(ingestion_id, file_path))) DO NOTHING
  RETURNING id, file_path, file_size, etag, modified_at
),
inserted_versions AS (
  INSERT INTO file_versions (file_id, version, etag, file_size, modified_at, run_id)
  SELECT id, 1, etag, file_size, modified_at, $2 FROM inserted
),
-- The row holding each listed path's key, if any: the same path, or (a key collision) another one, of this
-- ingestion or (as unlikely) another.
known AS MATERIALIZED (
  SELECT l.file_path, l.file_size, l.etag, l.modified_at, pf.id, pf.version, pf.status, pf.etag AS known_etag,
         pf.file_size AS known_size,
         CASE WHEN pf.ingestion_id = $1 THEN pf.file_path ELSE NULL END AS known_path
  FROM listed l
  -- A probe of the unique index per listed path, whatever the statistics say: joined as a set, a table
  -- not yet analyzed (the first minutes of a bulk load) was hashed whole for each page of 500 paths. The
  -- ingestion is compared after (in known_path), not named to the planner (see files.ts).
  CROSS JOIN LATERAL (
    SELECT p.id, p.version, p.status, p.etag, p.file_size, p.file_path, p.ingestion_id FROM processed_files p
    WHERE file_path_key(p.ingestion_id, p.file_path) = l.path_key LIMIT 1
  ) pf
),
-- Paths whose key another path holds: tracked already, or earlier in this page (then inserted, or not,
-- before this one, which the conflict skipped).
collided AS (
  -- (holder NULL: a path of another ingestion)
  SELECT file_path, known_path AS holder FROM known WHERE known_path IS DISTINCT FROM file_path
  UNION ALL
  SELECT d.file_path, d.holder FROM (
    SELECT file_path, first_value(file_path) OVER (PARTITION BY path_key ORDER BY file_path) AS holder
    FROM listed
  ) d
  WHERE d.holder <> d.file_path AND NOT EXISTS (SELECT 1 FROM known k WHERE k.file_path = d.file_path)
),
changed AS MATERIALIZED (
  SELECT k.id, k.version AS current_version, GREATEST(latest.version, k.version) AS latest_version,
         k.file_path, k.file_size, k.etag, k.modified_at
  FROM known k
  LEFT JOIN LATERAL (
    SELECT fv.version, fv.etag, fv.file_size FROM file_versions fv
    WHERE fv.file_id = k.id ORDER BY fv.version DESC LIMIT 1
  ) latest ON true
  WHERE k.known_path = k.file_path
    AND (CASE WHEN latest.version > k.version THEN latest.etag ELSE k.known_etag END IS DISTINCT FROM k.etag
         OR CASE WHEN latest.version > k.version THEN latest.file_size ELSE k.known_size END
            IS DISTINCT FROM k.file_size)
),
ignored AS (
  INSERT INTO file_versions (file_id, version, etag, file_size, modified_at, run_id, status, error_type, error_message)
  SELECT id, latest_version + 1, etag, file_size, modified_at, $2, 'SKIPPED'::file_status, '${IGNORED_CHANGE}',
         'the object changed after it was registered; the ingestion ignores modified files'
  FROM changed WHERE $7 = 'ignore' ORDER BY id
  ON CONFLICT (file_id, version) DO NOTHING
),
locked AS MATERIALIZED (
  SELECT pf.id FROM processed_files pf JOIN changed c ON c.id = pf.id
  WHERE $7 <> 'ignore' AND pf.version = c.current_version
  ORDER BY pf.id
  FOR UPDATE OF pf
),
bumped AS (
  UPDATE processed_files pf SET
    version = c.latest_version + 1, file_size = c.file_size, etag = c.etag, modified_at = c.modified_at,
    status = 'PENDING', run_id = $2, processing_started_at = NULL, processed_at = NULL,
    records_ingested = NULL, bytes_read = NULL, processing_duration_ms = NULL, error_message = NULL,
    error_type = NULL, retry_count = 0, attempts = 0, lease_owner = NULL, lease_expires_at = NULL,
    -- An earlier version's batch that Postgres decided to publish stays, so the new version's claim
    -- publishes it first (and a replace then swaps its rows), instead of racing its publisher.
    batch_id = CASE WHEN EXISTS (SELECT 1 FROM write_batches wb
                                 WHERE wb.id = pf.batch_id AND wb.state = 'PUBLISHING') THEN pf.batch_id END,
    snapshot_id = NULL, updated_at = now()
  FROM locked JOIN changed c ON c.id = locked.id
  WHERE pf.id = locked.id
  RETURNING pf.id, pf.version, pf.file_path, pf.file_size, pf.etag, pf.modified_at,
            c.current_version AS previous_version
),
bumped_versions AS (
  INSERT INTO file_versions (file_id, version, etag, file_size, modified_at, run_id)
  SELECT id, version, etag, file_size, modified_at, $2 FROM bumped
),
superseded AS (
  UPDATE file_versions fv SET status = 'SKIPPED', error_type = '${SUPERSEDED}',
    error_message = 'replaced by version ' || b.version || ' before it was processed'
  FROM bumped b
  WHERE fv.file_id = b.id AND fv.version = b.previous_version AND fv.status IN ('PENDING', 'PROCESSING')
),
cut_short AS (
  UPDATE file_attempts fa SET finished_at = now(), outcome = 'LOST', error_type = '${SUPERSEDED}',
    error_message = 'the object changed while it was being processed (now version ' || b.version || ')',
    duration_ms = (extract(epoch FROM now() - fa.started_at) * 1000)::int
  FROM bumped b
  WHERE fa.file_id = b.id AND fa.version = b.previous_version AND fa.finished_at IS NULL
)
SELECT 'created' AS kind, id, 1 AS version, file_path, NULL AS holder, NULL::file_status AS status FROM inserted
UNION ALL
SELECT 'modified' AS kind, id, version, file_path, NULL AS holder, NULL::file_status AS status FROM bumped
UNION ALL
SELECT 'collided' AS kind, NULL, NULL, file_path, holder, NULL::file_status AS status FROM collided
UNION ALL
-- Asked for ($8): the paths tracked already and left as they were, with their state as this statement saw
-- it. A change this statement acted on is not one of them (bumped: returned as modified; not bumped because
-- a concurrent caller moved the file on first: its state is unknown here).
SELECT 'known' AS kind, k.id, k.version, k.file_path, NULL AS holder, k.status FROM known k
WHERE $8 AND k.known_path = k.file_path
  AND NOT EXISTS (SELECT 1 FROM changed c WHERE c.id = k.id AND $7 <> 'ignore')
ORDER BY id, file_path`;

/**
 * Registers one page of a listing: new paths become PENDING version 1; paths whose etag or size changed
 * follow `modifiedPolicy` (`ignore`: a SKIPPED history row only; `append`/`replace`: the next version,
 * PENDING, its counters reset; a version still PENDING or PROCESSING is superseded and an in-flight attempt's
 * outcome will be ignored). Returns the file versions to enqueue. Identical re-listing registers nothing;
 * safe under concurrent callers (each new path or version is returned to exactly one of them). A path whose
 * 128-bit key another, different path of the ingestion holds (a SHA-256 prefix collision, or one forced in
 * a test) is registered under no file and returned in `refused` with the reason.
 *
 * With `reportKnown`, `known` also lists the paths tracked already that this call left as they were, with
 * their version and status as it saw them; a path in none of the four lists was registered by a concurrent
 * caller meanwhile (look it up). Without it, `known` is empty.
 *
 * @throws InvalidInputError on a malformed listing entry.
 */
export async function registerFiles(
  db: Database,
  input: {
    ingestionId: number;
    runId: number;
    files: ListedFile[];
    modifiedPolicy: ModifiedPolicy;
    reportKnown?: boolean;
  },
): Promise<RegisteredFiles> {
  requireId("ingestionId", input.ingestionId);
  requireId("runId", input.runId);
  requireOneOf("modifiedPolicy", input.modifiedPolicy, MODIFIED_POLICIES);
  // One entry per path (the last wins), in path order so concurrent callers insert in the same order.
  const byPath = new Map<string, ListedFile>();
  input.files.forEach((file, i) => {
    requireText(`files[${i}].uri`, file.uri);
    requireCount(`files[${i}].size`, file.size);
    if (typeof file.etag !== "string") throw new InvalidInputError(`files[${i}].etag`, "must be a string");
    if (!(file.modifiedAt instanceof Date) || Number.isNaN(file.modifiedAt.getTime())) {
      throw new InvalidInputError(`files[${i}].modifiedAt`, "must be a valid Date");
    }
    byPath.set(file.uri, file);
  });
  if (byPath.size === 0) return { created: [], modified: [], refused: [], known: [] };
  const files = [...byPath.values()].sort((a, b) => (a.uri < b.uri ? -1 : a.uri > b.uri ? 1 : 0));
  return runOperation("registerFiles", async () => {
    const { rows } = await db.pool.query<
      | {
          kind: "created" | "modified";
          id: string;
          version: number;
          file_path: string;
          holder: null;
          status: null;
        }
      | { kind: "known"; id: string; version: number; file_path: string; holder: null; status: FileStatus }
      | { kind: "collided"; id: null; version: null; file_path: string; holder: string | null; status: null }
    >(REGISTER_FILES_SQL, [
      input.ingestionId,
      input.runId,
      files.map((f) => f.uri),
      files.map((f) => f.size),
      files.map((f) => f.etag),
      files.map((f) => f.modifiedAt),
      input.modifiedPolicy,
      input.reportKnown === true,
    ]);
    const created: FileRef[] = [];
    const modified: FileRef[] = [];
    const refused: Refusal[] = [];
    const known: KnownFile[] = [];
    for (const row of rows) {
      if (row.kind === "collided") {
        refused.push({ path: row.file_path, reason: pathKeyCollision(row.holder) });
        continue;
      }
      const ref = { id: toNumber(row.id), version: row.version, path: row.file_path };
      if (row.kind === "known") known.push({ ...ref, status: row.status });
      else (row.kind === "created" ? created : modified).push(ref);
    }
    return { created, modified, refused, known };
  });
}

/** What one call registered; see `registerFiles`. */
export interface RegisteredFiles {
  created: FileRef[];
  modified: FileRef[];
  refused: Refusal[];
  known: KnownFile[];
}

/** A file tracked before the call and left as it was, in the state the call saw. */
export interface KnownFile extends FileRef {
  status: FileStatus;
}

/**
 * Why a path whose key `holder` holds is refused (see `file_path_key` in the migrations); null: a path of
 * another ingestion holds it.
 */
export function pathKeyCollision(holder: string | null): string {
  const whose =
    holder === null ? "a path another ingestion tracks" : `${holder}, a different path this ingestion tracks`;
  return (
    `its 128-bit path key (SHA-256 prefix) equals that of ${whose}, so the two cannot be told apart; ` +
    "rename the object and submit it again"
  );
}
