import { InvalidInputError } from "@lakeferry/core";
import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import { requireCount, toNumber } from "./values.ts";

/**
 * The tables state retention prunes, in the order it prunes them (runs last, so that the versions that
 * name them are mostly gone first). Versions take their finished source cleanups (source_cleanups) along,
 * batches their members (write_batch_files), runs their refusals (run_refusals).
 */
export const PRUNED_TABLES = ["file_attempts", "file_versions", "write_batches", "runs"] as const;
export type PrunedTable = (typeof PRUNED_TABLES)[number];

/** Every table whose rows prune archives: the pruned ones and the rows that go with them. */
export const ARCHIVED_TABLES = [
  "file_attempts",
  "file_versions",
  "write_batches",
  "write_batch_files",
  "runs",
  "run_refusals",
  "source_cleanups",
] as const;
export type ArchivedTable = (typeof ARCHIVED_TABLES)[number];

/** Rows per archived table (tables with none may be absent). */
export type PruneCounts = Partial<Record<ArchivedTable, number>>;

/** A row about to be pruned, as the audit table keeps it. */
export interface ArchivedRow {
  table: ArchivedTable;
  /**
   * The row's primary key in Postgres as text (`id`; `file_id/version` for file_versions;
   * `batch_id/file_id` for write_batch_files): a row archived twice (a prune that stopped between archive
   * and delete, run again) is recognisable by table and key.
   */
  key: string;
  /** The ingestion the row belongs to. */
  ingestionId: number;
  /** When the row's story ended: an attempt finished, a version settled, a batch resolved, a run finished. */
  at: Date;
  /** The whole row as JSON (Postgres' `to_jsonb`), so the archive needs no change when a column is added. */
  row: string;
}

/** Where a walk over a table stands; opaque. `undefined` starts at the beginning. */
export type PruneCursor = readonly string[];

/** One window of a walk over a table. */
export interface PrunableWindow {
  /** The rows to archive, the pruned table's own and those that go with them. */
  rows: ArchivedRow[];
  /** Keys of the pruned table's rows among `rows`: what {@link deletePrunedRows} is given. */
  keys: string[];
  /** Where the next window starts; null when the walk is over. */
  next: PruneCursor | null;
}

const SETTLED_FILE = `pf.status NOT IN ('PENDING', 'PROCESSING')`;

/*
 * Which rows may go, as SQL over aliases (`fa`, `fv`, `wb`, `r`; `pf` the file's row; `$cutoff` replaced by
 * the cutoff's parameter). Each is checked twice: when the window is read (to archive) and again in the
 * DELETE, so that a row that came back to life in between (a FAILED file retried) is archived but kept.
 */
const PRUNABLE: Record<PrunedTable, string> = {
  // A finished attempt, unless it is of the version a PENDING or PROCESSING file is at.
  file_attempts: `fa.finished_at < $cutoff AND NOT (pf.version = fa.version AND NOT ${SETTLED_FILE})`,
  // A settled version: the current one once its file is settled (processed_files keeps what registration
  // compares: path, etag, size, modified time, status), any earlier one, and a later one unless it is the
  // latest (a change the `ignore` policy recorded and did not act on: registration compares with it).
  file_versions: `fv.status NOT IN ('PENDING', 'PROCESSING') AND COALESCE(fv.processed_at, fv.seen_at) < $cutoff
    AND CASE WHEN fv.version = pf.version THEN ${SETTLED_FILE}
             WHEN fv.version < pf.version THEN true
             ELSE EXISTS (SELECT 1 FROM file_versions later
                          WHERE later.file_id = fv.file_id AND later.version > fv.version) END`,
  // A resolved batch, unless a member still at it is PENDING or PROCESSING: such a file's next claim settles
  // the batch first (a commit whose bookkeeping was cut short), and must find it. A settled file's retry
  // forgets a resolved batch anyway (resetFilesForRetry). A committed batch whose source objects
  // its ingestion's cleanSource has yet to clean stays too: source cleanup walks the batches.
  write_batches: `wb.state IN ('COMMITTED', 'FAILED', 'ABANDONED')
    AND COALESCE(wb.resolved_at, wb.created_at) < $cutoff
    AND NOT (wb.state = 'COMMITTED' AND wb.sources_cleaned_at IS NULL
             AND EXISTS (SELECT 1 FROM ingestions i WHERE i.id = wb.ingestion_id AND i.clean_source IS NOT NULL
                           AND jsonb_typeof(i.clean_source) = 'object'))
    AND NOT EXISTS (SELECT 1 FROM write_batch_files m JOIN processed_files pf ON pf.id = m.file_id
                    WHERE m.batch_id = wb.id AND pf.batch_id = wb.id AND NOT ${SETTLED_FILE})`,
  // A finished run (one still `running` is closed by the reconciler first).
  runs: `r.status <> 'running' AND COALESCE(r.finished_at, r.started_at) < $cutoff`,
};

function prunable(table: PrunedTable, cutoffParam: string): string {
  return PRUNABLE[table].replaceAll("$cutoff", cutoffParam);
}

/**
 * A source cleanup that is over: its action taken, and its batch's cleanup finished (or the batch pruned),
 * both before the cutoff, so that the read and the delete agree and the cleaner, which walks a batch until
 * it is marked cleaned, never looks for the row again. One still failing stays for the cleaner.
 */
const CLEANUP_DONE = `sc.cleaned_at < $cutoff
  AND NOT EXISTS (SELECT 1 FROM write_batches wb
                  WHERE wb.id = sc.batch_id AND (wb.sources_cleaned_at IS NULL OR wb.sources_cleaned_at >= $cutoff))`;

function cleanupDone(cutoffParam: string): string {
  return CLEANUP_DONE.replaceAll("$cutoff", cutoffParam);
}

/*
 * Each window is the next `$scan` rows in key order, whatever they are, so a statement's cost is bounded;
 * `born` is when the row (or its file) came to be, which key order follows: a window whose rows were all
 * born after the cutoff ends the walk, since nothing after it can be old enough.
 */
const WINDOW_SQL: Record<PrunedTable, string> = {
  file_attempts: `
WITH w AS MATERIALIZED (SELECT * FROM file_attempts WHERE id > $1::bigint ORDER BY id LIMIT $3)
SELECT fa.id::text AS key, ARRAY[fa.id::text] AS pos, pf.ingestion_id::text AS ingestion_id, fa.finished_at AS at, fa.started_at AS born,
       CASE WHEN ${prunable("file_attempts", "$2")} THEN to_jsonb(fa)::text END AS row, NULL::json AS extra
FROM w fa JOIN processed_files pf ON pf.id = fa.file_id
ORDER BY fa.id`,
  file_versions: `
WITH w AS MATERIALIZED (
  SELECT * FROM file_versions WHERE (file_id, version) > ($1::bigint, $4::int) ORDER BY file_id, version LIMIT $3
)
SELECT fv.file_id || '/' || fv.version AS key, ARRAY[fv.file_id::text, fv.version::text] AS pos,
       pf.ingestion_id::text AS ingestion_id,
       COALESCE(fv.processed_at, fv.seen_at) AS at, pf.discovered_at AS born, p.row,
       CASE WHEN p.row IS NOT NULL THEN
         (SELECT json_agg(json_build_object('key', sc.file_id || '/' || sc.version, 'row', to_jsonb(sc)::text))
          FROM source_cleanups sc
          WHERE sc.file_id = fv.file_id AND sc.version = fv.version AND ${cleanupDone("$2")}) END AS extra
FROM w fv JOIN processed_files pf ON pf.id = fv.file_id
     CROSS JOIN LATERAL (SELECT CASE WHEN ${prunable("file_versions", "$2")} THEN to_jsonb(fv)::text END AS row) p
ORDER BY fv.file_id, fv.version`,
  write_batches: `
WITH w AS MATERIALIZED (
  SELECT * FROM write_batches WHERE (created_at, id) > ($1::timestamptz, $4::uuid) ORDER BY created_at, id LIMIT $3
)
SELECT wb.id::text AS key, ARRAY[wb.created_at::text, wb.id::text] AS pos, wb.ingestion_id::text AS ingestion_id,
       COALESCE(wb.resolved_at, wb.created_at) AS at, wb.created_at AS born, p.row,
       CASE WHEN p.row IS NOT NULL THEN
         (SELECT json_agg(json_build_object('key', m.batch_id || '/' || m.file_id, 'row', to_jsonb(m)::text)
                          ORDER BY m.file_id)
          FROM write_batch_files m WHERE m.batch_id = wb.id) END AS extra
FROM w wb CROSS JOIN LATERAL (SELECT CASE WHEN ${prunable("write_batches", "$2")} THEN to_jsonb(wb)::text END AS row) p
ORDER BY wb.created_at, wb.id`,
  runs: `
WITH w AS MATERIALIZED (SELECT * FROM runs WHERE id > $1::bigint ORDER BY id LIMIT $3)
SELECT r.id::text AS key, ARRAY[r.id::text] AS pos, r.ingestion_id::text AS ingestion_id, COALESCE(r.finished_at, r.started_at) AS at,
       r.started_at AS born, p.row,
       CASE WHEN p.row IS NOT NULL THEN
         (SELECT json_agg(json_build_object('key', rr.id::text, 'row', to_jsonb(rr)::text) ORDER BY rr.id)
          FROM run_refusals rr WHERE rr.run_id = r.id) END AS extra
FROM w r CROSS JOIN LATERAL (SELECT CASE WHEN ${prunable("runs", "$2")} THEN to_jsonb(r)::text END AS row) p
ORDER BY r.id`,
};

/** The rows that go with a pruned table's rows, and the start of a walk over it. */
const SHAPE: Record<PrunedTable, { extra?: ArchivedTable; start: PruneCursor }> = {
  file_attempts: { start: ["0"] },
  file_versions: { extra: "source_cleanups", start: ["0", "0"] },
  write_batches: { extra: "write_batch_files", start: ["-infinity", "00000000-0000-0000-0000-000000000000"] },
  runs: { extra: "run_refusals", start: ["0"] },
};

/**
 * Reads the next window of `scan` rows (default 1,000) of `table` after `after`, and returns those that
 * may be pruned with everything the archive keeps of them: rows settled before `before` and no longer
 * needed by anything in flight (see the rules above), with their batch members or run refusals.
 * Read-only.
 */
export async function prunableRows(
  db: Database,
  input: { table: PrunedTable; before: Date; after?: PruneCursor; scan?: number },
): Promise<PrunableWindow> {
  const table = prunedTable(input.table);
  const scan = requireCount("scan", input.scan ?? 1_000, 1);
  const before = requireDate("before", input.before);
  const shape = SHAPE[table];
  const after = input.after ?? shape.start;
  if (after.length !== shape.start.length) {
    throw new InvalidInputError("after", `is not a cursor of ${table}`);
  }
  return runOperation("prunableRows", async () => {
    const params: unknown[] = [after[0], before, scan];
    if (after.length > 1) params.push(after[1]);
    const { rows } = await db.pool.query<{
      key: string;
      pos: string[];
      ingestion_id: string;
      at: Date;
      born: Date;
      row: string | null;
      extra: { key: string; row: string }[] | null;
    }>(WINDOW_SQL[table], params);
    const window: PrunableWindow = { rows: [], keys: [], next: null };
    for (const row of rows) {
      if (row.row === null) continue;
      const ingestionId = toNumber(row.ingestion_id);
      window.keys.push(row.key);
      window.rows.push({ table, key: row.key, ingestionId, at: row.at, row: row.row });
      for (const extra of row.extra ?? []) {
        window.rows.push({
          table: shape.extra as ArchivedTable,
          key: extra.key,
          ingestionId,
          at: row.at,
          row: extra.row,
        });
      }
    }
    const last = rows[rows.length - 1];
    const anyOld = rows.some((row) => row.born < before);
    if (last !== undefined && rows.length === scan && anyOld) window.next = last.pos;
    return window;
  });
}

const DELETE_SQL: Record<PrunedTable, string> = {
  file_attempts: `
WITH gone AS (
  DELETE FROM file_attempts fa USING processed_files pf
  WHERE fa.id = ANY($1::bigint[]) AND pf.id = fa.file_id AND ${prunable("file_attempts", "$2")}
  RETURNING fa.id
)
SELECT count(*)::int AS main, 0 AS extra FROM gone`,
  file_versions: `
WITH keys AS (SELECT split_part(k, '/', 1)::bigint AS file_id, split_part(k, '/', 2)::int AS version
              FROM unnest($1::text[]) AS k),
gone AS (
  DELETE FROM file_versions fv USING processed_files pf, keys
  WHERE fv.file_id = keys.file_id AND fv.version = keys.version AND pf.id = fv.file_id
    AND ${prunable("file_versions", "$2")}
  RETURNING fv.file_id, fv.version
),
cleanups AS (
  DELETE FROM source_cleanups sc USING gone
  WHERE sc.file_id = gone.file_id AND sc.version = gone.version AND ${cleanupDone("$2")}
  RETURNING 1
)
SELECT (SELECT count(*) FROM gone)::int AS main, (SELECT count(*) FROM cleanups)::int AS extra`,
  // Members go by the foreign key's cascade; counted from the statement's snapshot, which still has them.
  write_batches: `
WITH gone AS (
  DELETE FROM write_batches wb
  WHERE wb.id = ANY($1::uuid[])
    AND ${prunable("write_batches", "$2")}
  RETURNING wb.id
)
SELECT (SELECT count(*) FROM gone)::int AS main,
       (SELECT count(*) FROM write_batch_files m WHERE m.batch_id IN (SELECT id FROM gone))::int AS extra`,
  // Refusals go by the cascade; versions that still name the run are few (the rest were pruned before).
  runs: `
WITH gone AS (
  DELETE FROM runs r WHERE r.id = ANY($1::bigint[]) AND ${prunable("runs", "$2")}
  RETURNING r.id
)
SELECT (SELECT count(*) FROM gone)::int AS main,
       (SELECT count(*) FROM run_refusals rr WHERE rr.run_id IN (SELECT id FROM gone))::int AS extra`,
};

/**
 * Deletes the rows of `table` with these keys (from {@link prunableRows}, after they were archived) that
 * may still be pruned by the same rules and cutoff; a row that came back into use since is kept. One
 * statement. Returns the rows deleted per table.
 */
export async function deletePrunedRows(
  db: Database,
  input: { table: PrunedTable; before: Date; keys: string[] },
): Promise<PruneCounts> {
  const table = prunedTable(input.table);
  const before = requireDate("before", input.before);
  if (!Array.isArray(input.keys) || input.keys.some((key) => typeof key !== "string" || key === "")) {
    throw new InvalidInputError("keys", "must be an array of row keys");
  }
  if (input.keys.length === 0) return {};
  return runOperation("deletePrunedRows", async () => {
    const { rows } = await db.pool.query<{ main: number; extra: number }>(DELETE_SQL[table], [
      input.keys,
      before,
    ]);
    const counts: PruneCounts = { [table]: rows[0]?.main ?? 0 };
    const extra = SHAPE[table].extra;
    if (extra !== undefined) counts[extra] = rows[0]?.extra ?? 0;
    return counts;
  });
}

function prunedTable(table: PrunedTable): PrunedTable {
  if (!(PRUNED_TABLES as readonly string[]).includes(table)) {
    throw new InvalidInputError("table", `must be one of ${PRUNED_TABLES.join(", ")}`);
  }
  return table;
}

function requireDate(field: string, value: Date): Date {
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) {
    throw new InvalidInputError(field, "must be a valid Date");
  }
  return value;
}
