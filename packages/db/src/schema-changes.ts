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
 * growing. A column seen again after an approval (the table was replaced since, say) is pending again.
 */
export async function recordSchemaChanges(db: Database, seen: readonly SchemaChangeSeen[]): Promise<void> {
  if (seen.length === 0) return;
  seen.forEach((change, index) => {
    requireId(`seen[${index}].ingestionId`, change.ingestionId);
    requireText(`seen[${index}].column`, change.column);
    requireText(`seen[${index}].type`, change.type);
  });
  await runOperation("recordSchemaChanges", async () => {
    await db.pool.query(
      `INSERT INTO schema_changes AS sc (ingestion_id, column_name, data_type, files, example_file)
       SELECT ingestion_id, column_name, data_type, count(*), min(file_uri)
         FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
              AS s(ingestion_id, column_name, data_type, file_uri)
        GROUP BY ingestion_id, column_name, data_type
        ORDER BY ingestion_id, column_name, data_type
       ON CONFLICT (ingestion_id, column_name, data_type) DO UPDATE SET
         files = sc.files + EXCLUDED.files, last_seen_at = now(), approved_at = NULL`,
      [
        seen.map((change) => change.ingestionId),
        seen.map((change) => change.column),
        seen.map((change) => change.type),
        seen.map((change) => change.fileUri),
      ],
    );
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
    const { rows } = await db.pool.query<{
      column: string;
      type: string;
      files: number;
      exampleFile: string;
      firstSeenAt: Date;
      lastSeenAt: Date;
      approvedAt: Date | null;
    }>(
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
