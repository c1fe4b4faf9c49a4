import type { Database } from "@lakeferry/db";
import type { SparkConnectClient } from "@lakeferry/spark-connect";
import type { LandedFile } from "./landing.ts";

/** A file that breaks the rules, with what the table and Postgres say of it. */
export interface Offender {
  uri: string;
  /** Rows in the file (0 for a corrupt one: none may land). */
  expected: number;
  /** Rows with this `_source_file` in the table. */
  inTable: number;
  /** Its status in Postgres (`unregistered` when it has no row). */
  status: string;
  attempts: number;
  error: string | null;
}

/**
 * The judgement, from the table first: rows per `_source_file` against each landed file; Postgres only for
 * what only it knows (a file's FAILED, PENDING or PROCESSING status).
 */
export interface Verdict {
  files: number;
  good: number;
  corrupt: number;
  /** Good files with fewer rows in the table than in the file (none at all included). */
  lost: Offender[];
  /** Good files with more rows in the table than in the file. */
  duplicated: Offender[];
  /** Good files FAILED in Postgres. */
  wronglyFailed: Offender[];
  /** Corrupt files not FAILED in Postgres, or with rows in the table. */
  corruptNotFailed: Offender[];
  /** Files PENDING or PROCESSING (or never registered) after the drain. */
  unsettled: Offender[];
  /** `_source_file` values in the table that no landed file has. */
  strangers: string[];
  /** Rows in the table, and the rows the good files hold. */
  rows: { inTable: number; expected: number };
  ok: boolean;
}

interface FileRow {
  file_path: string;
  status: string;
  attempts: number;
  error_type: string | null;
  error_message: string | null;
}

export async function judge(options: {
  spark: SparkConnectClient;
  db: Database;
  table: string;
  landed: readonly LandedFile[];
}): Promise<Verdict> {
  const { spark, db, table, landed } = options;
  const tableRows = await spark.sql(
    `SELECT _source_file AS f, count(*) AS n FROM ${table} GROUP BY _source_file`,
    undefined,
    { deadlineMs: 300_000 },
  );
  const inTable = new Map(tableRows.map((row) => [String(row.f), Number(row.n)]));
  const { rows } = await db.pool.query<FileRow>(
    "SELECT file_path, status::text AS status, attempts, error_type, error_message FROM processed_files",
  );
  const records = new Map(rows.map((row) => [row.file_path, row]));

  const verdict: Verdict = {
    files: landed.length,
    good: landed.filter((file) => !file.corrupt).length,
    corrupt: landed.filter((file) => file.corrupt).length,
    lost: [],
    duplicated: [],
    wronglyFailed: [],
    corruptNotFailed: [],
    unsettled: [],
    strangers: [],
    rows: { inTable: 0, expected: 0 },
    ok: false,
  };
  const landedUris = new Set(landed.map((file) => file.uri));
  for (const file of landed) {
    const record = records.get(file.uri);
    const offender: Offender = {
      uri: file.uri,
      expected: file.corrupt ? 0 : file.rows,
      inTable: inTable.get(file.uri) ?? 0,
      status: record?.status ?? "unregistered",
      attempts: record?.attempts ?? 0,
      error: record?.error_type ? `${record.error_type}: ${record.error_message ?? ""}`.slice(0, 300) : null,
    };
    if (!file.corrupt) verdict.rows.expected += file.rows;
    if (!record || record.status === "PENDING" || record.status === "PROCESSING")
      verdict.unsettled.push(offender);
    if (file.corrupt) {
      if (offender.status !== "FAILED" || offender.inTable > 0) verdict.corruptNotFailed.push(offender);
      continue;
    }
    if (offender.inTable < file.rows) verdict.lost.push(offender);
    if (offender.inTable > file.rows) verdict.duplicated.push(offender);
    if (offender.status === "FAILED") verdict.wronglyFailed.push(offender);
  }
  for (const [uri, n] of inTable) {
    verdict.rows.inTable += n;
    if (!landedUris.has(uri)) verdict.strangers.push(`${uri} (${n} rows)`);
  }
  verdict.ok =
    verdict.lost.length +
      verdict.duplicated.length +
      verdict.wronglyFailed.length +
      verdict.corruptNotFailed.length +
      verdict.unsettled.length +
      verdict.strangers.length ===
    0;
  return verdict;
}

/**
 * What Postgres and the table say about each offender, for the report: its attempts (worker, outcome,
 * batch), and its rows in the table grouped by `_ingested_at`, matched to the batch that wrote them.
 */
export async function evidence(options: {
  spark: SparkConnectClient;
  db: Database;
  table: string;
  uris: readonly string[];
}): Promise<string[]> {
  const { spark, db, table, uris } = options;
  if (uris.length === 0) return [];
  const lines: string[] = [];
  const batches = await db.pool.query<{
    id: string;
    state: string;
    worker: string;
    ingested_at_micros: string | null;
    staged_snapshot_id: string | null;
    snapshot_id: string | null;
    error_message: string | null;
    created_at: Date;
    resolved_at: Date | null;
  }>(
    "SELECT id, state::text AS state, worker, ingested_at_micros::text AS ingested_at_micros, " +
      "staged_snapshot_id::text AS staged_snapshot_id, snapshot_id::text AS snapshot_id, error_message, " +
      "created_at, resolved_at FROM write_batches",
  );
  const byMarker = new Map(batches.rows.map((batch) => [batch.ingested_at_micros, batch]));
  const byId = new Map(batches.rows.map((batch) => [batch.id, batch]));
  const describe = (id: string | null): string => {
    const batch = id ? byId.get(id) : undefined;
    if (!batch) return id ?? "-";
    return `${batch.id.slice(0, 8)} ${batch.state} by ${batch.worker} (created ${batch.created_at.toISOString()}, resolved ${batch.resolved_at?.toISOString() ?? "-"}, staged ${batch.staged_snapshot_id ?? "-"}, snapshot ${batch.snapshot_id ?? "-"}${batch.error_message ? `, "${batch.error_message.slice(0, 160)}"` : ""})`;
  };
  for (const uri of uris.slice(0, 20)) {
    lines.push(`  ${uri}`);
    const attempts = await db.pool.query<{
      attempt: number;
      worker: string;
      outcome: string | null;
      batch_id: string | null;
      started_at: Date;
      finished_at: Date | null;
      error_type: string | null;
      counted: boolean;
    }>(
      "SELECT a.attempt, a.worker, a.outcome::text AS outcome, a.batch_id, a.started_at, a.finished_at, " +
        "a.error_type, a.counted FROM file_attempts a JOIN processed_files f ON f.id = a.file_id " +
        "WHERE f.file_path = $1 ORDER BY a.attempt",
      [uri],
    );
    for (const a of attempts.rows) {
      lines.push(
        `    attempt ${a.attempt} ${a.worker} ${a.started_at.toISOString()}→${a.finished_at?.toISOString() ?? "-"} ${a.outcome ?? "open"}${a.error_type ? ` ${a.error_type}` : ""}${a.counted ? "" : " (not counted)"} batch ${describe(a.batch_id)}`,
      );
    }
    const members = await db.pool.query<{ batch_id: string }>(
      "SELECT m.batch_id FROM write_batch_files m JOIN processed_files f ON f.id = m.file_id WHERE f.file_path = $1",
      [uri],
    );
    for (const m of members.rows) lines.push(`    member of batch ${describe(m.batch_id)}`);
    const groups = await spark.sql(
      `SELECT CAST(unix_micros(_ingested_at) AS STRING) AS marker, count(*) AS n FROM ${table} WHERE _source_file = :uri GROUP BY _ingested_at ORDER BY marker`,
      { uri },
    );
    for (const group of groups) {
      const batch = byMarker.get(String(group.marker));
      lines.push(
        `    ${String(group.n)} rows in the table with _ingested_at ${String(group.marker)} → batch ${batch ? describe(batch.id) : "none recorded with that marker"}`,
      );
    }
  }
  if (uris.length > 20) lines.push(`  … and ${uris.length - 20} more`);
  return lines;
}
