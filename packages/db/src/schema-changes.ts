import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import { requireId, requireText, toNumber } from "./values.ts";

/** A column a file brought that its table lacks (failOnNewColumns), skipped for until approved. */
export interface SchemaChangeSeen {
  ingestionId: number;
  column: string;
  /** Spark's DDL type text as inferred (with the ingestion's hints). */
  type: string;
  fileUri: string;
}

/** A recorded new column, with the files that wait for it. */
export interface SchemaChange {
  column: string;
  type: string;
  /** Files skipped for it so far. */
  files: number;
  exampleFile: string;
  firstSeenAt: Date;
  lastSeenAt: Date;
  /** Null while pending. */
  approvedAt: Date | null;
}

/**
 * Records the new columns refused files brought: one row per (ingestion, column, type), its file count
 * growing. `tableReadAt` is when the writer read the table's columns (Postgres' clock, before the write): an
 * approval older than that did not put the column in the table (the table was replaced since, say), so the
 * column is pending again; a newer one happened while the batch was written. Returns the columns approved
 * (`column type` keys): their files must not wait, the table has them now.
 */
export async function recordSchemaChanges(
  db: Database,
  seen: readonly SchemaChangeSeen[],
  tableReadAt: Date,
): Promise<Set<string>> {
  if (seen.length === 0) return new Set();
  seen.forEach((change, index) => {
    requireId(`seen[${index}].ingestionId`, change.ingestionId);
    requireText(`seen[${index}].column`, change.column);
    requireText(`seen[${index}].type`, change.type);
  });
  return runOperation("recordSchemaChanges", async () => {
    const { rows } = await db.pool.query<{ column: string; type: string }>(
      `INSERT INTO schema_changes AS sc (ingestion_id, column_name, data_type, files, example_file)
       SELECT ingestion_id, column_name, data_type, count(*), min(file_uri)
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
              AS s(ingestion_id, column_name, data_type, file_uri)
        GROUP BY ingestion_id, column_name, data_type
        ORDER BY ingestion_id, column_name, data_type
       ON CONFLICT (ingestion_id, column_name, data_type) DO UPDATE SET
         files = sc.files + EXCLUDED.files, last_seen_at = now(),
         approved_at = CASE WHEN sc.approved_at < $5 THEN NULL ELSE sc.approved_at END
       RETURNING column_name AS "column", data_type AS "type", approved_at IS NOT NULL AS approved`,
      [
        seen.map((change) => change.ingestionId),
        seen.map((change) => change.column),
        seen.map((change) => change.type),
        seen.map((change) => change.fileUri),
        tableReadAt,
      ],
    );
    return new Set(
      (rows as { column: string; type: string; approved: boolean }[])
        .filter((row) => row.approved)
        .map((row) => `${row.column} ${row.type}`),
    );
  });
}

/**
 * Of these (column, type) pairs of the ingestion, the ones approved now (`column type` keys): a writer that
 * skipped files for them while an approval ran checks again after recording, so no file waits for a change
 * already made.
 */
export async function approvedSchemaChanges(
  db: Database,
  ingestionId: number,
  columns: readonly { column: string; type: string }[],
): Promise<Set<string>> {
  requireId("ingestionId", ingestionId);
  if (columns.length === 0) return new Set();
  return runOperation("approvedSchemaChanges", async () => {
    const { rows } = await db.pool.query<{ key: string }>(
      `SELECT sc.column_name || ' ' || sc.data_type AS key
         FROM schema_changes sc
         JOIN unnest($2::text[], $3::text[]) AS a(column_name, data_type)
           ON sc.column_name = a.column_name AND sc.data_type = a.data_type
        WHERE sc.ingestion_id = $1 AND sc.approved_at IS NOT NULL`,
      [ingestionId, columns.map((change) => change.column), columns.map((change) => change.type)],
    );
    return new Set(rows.map((row) => row.key));
  });
}

/** The ingestion's recorded new columns, pending first, then by column. */
export async function listSchemaChanges(
  db: Database,
  ingestionId: number,
  options: { pendingOnly?: boolean } = {},
): Promise<SchemaChange[]> {
  requireId("ingestionId", ingestionId);
  return runOperation("listSchemaChanges", async () => {
    const { rows } = await db.pool.query<SchemaChange>(
      `SELECT column_name AS "column", data_type AS "type", files, example_file AS "exampleFile",
              first_seen_at AS "firstSeenAt", last_seen_at AS "lastSeenAt", approved_at AS "approvedAt"
         FROM schema_changes
        WHERE ingestion_id = $1 AND (NOT $2 OR approved_at IS NULL)
        ORDER BY approved_at IS NOT NULL, column_name, data_type`,
      [ingestionId, options.pendingOnly === true],
    );
    return rows.map((row) => ({ ...row, files: toNumber(row.files) }));
  });
}

/** Marks the given pending columns approved (their columns are in the table now). Returns how many. */
export async function markSchemaChangesApproved(
  db: Database,
  ingestionId: number,
  columns: readonly { column: string; type: string }[],
): Promise<number> {
  requireId("ingestionId", ingestionId);
  if (columns.length === 0) return 0;
  return runOperation("markSchemaChangesApproved", async () => {
    const { rowCount } = await db.pool.query(
      `UPDATE schema_changes sc SET approved_at = now()
         FROM unnest($2::text[], $3::text[]) AS a(column_name, data_type)
        WHERE sc.ingestion_id = $1 AND sc.column_name = a.column_name AND sc.data_type = a.data_type
          AND sc.approved_at IS NULL`,
      [ingestionId, columns.map((change) => change.column), columns.map((change) => change.type)],
    );
    return rowCount ?? 0;
  });
}
