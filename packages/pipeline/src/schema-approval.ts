import { InvalidInputError } from "@lakeferry/core";
import {
  listSchemaChanges,
  markSchemaChangesApproved,
  resetFilesForRetry,
  type Database,
  type Ingestion,
  type SchemaChange,
} from "@lakeferry/db";
import { IcebergWriter, parseSchemaHints, SCHEMA_CHANGE_PENDING } from "@lakeferry/iceberg";
import type { IngestQueue } from "@lakeferry/queue";
import type { SparkConnectClient } from "@lakeferry/spark-connect";
import { enqueueFiles } from "./enqueue-files.ts";

/** What an approval did. */
export interface SchemaApproval {
  /** The columns approved, each with the type the table has it with now. */
  approved: { column: string; type: string }[];
  /** Columns the approval added to the table (those it had already are left as they are). */
  added: string[];
  /** Files SKIPPED for new columns that were queued again. */
  requeued: number;
}

/**
 * The seed's approval flow under `failOnNewColumns`: adds the pending new columns to the ingestion's table
 * (each with its inferred type, or the type `schemaHints` gives it), marks them approved, and queues again
 * exactly the files skipped for them (SKIPPED, SCHEMA_CHANGE_PENDING). A column seen with two types is
 * refused until a hint settles its type.
 *
 * With nothing pending it only queues files still skipped for an earlier approval (one interrupted between
 * its steps).
 *
 * @throws InvalidInputError when a column's type is ambiguous.
 */
export async function approveSchemaChanges(
  deps: { db: Database; spark: SparkConnectClient; ingestQueue: IngestQueue },
  ingestion: Ingestion,
): Promise<SchemaApproval> {
  const pending = await listSchemaChanges(deps.db, ingestion.id, { pendingOnly: true });
  const columns = resolveTypes(ingestion, pending);
  const writer = new IcebergWriter({ spark: deps.spark });
  const added =
    columns.length === 0
      ? []
      : await writer.addColumns(
          ingestion.targetTable,
          columns.map(({ column, type }) => ({ name: column, type })),
          { deadlineMs: 120_000 },
        );
  await markSchemaChangesApproved(
    deps.db,
    ingestion.id,
    pending.map((change) => ({ column: change.column, type: change.type })),
  );
  // Files skipped before the approval wait for it: all of them go again, the ones skipped for a change
  // approved earlier but not requeued (a crash between the two steps) included.
  const refs = await resetFilesForRetry(deps.db, ingestion.id, { skippedFor: SCHEMA_CHANGE_PENDING });
  await enqueueFiles(deps.ingestQueue, ingestion, refs);
  return { approved: columns, added, requeued: refs.length };
}

/** One type per pending column: the ingestion's hint, else the only type it was seen with. */
function resolveTypes(ingestion: Ingestion, pending: SchemaChange[]): { column: string; type: string }[] {
  const hints = new Map(
    (ingestion.schemaHints === null ? [] : parseSchemaHints(ingestion.schemaHints)).map((hint) => [
      hint.name.toLowerCase(),
      hint.type,
    ]),
  );
  const seen = new Map<string, SchemaChange[]>();
  for (const change of pending) {
    const key = change.column.toLowerCase();
    seen.set(key, [...(seen.get(key) ?? []), change]);
  }
  const columns: { column: string; type: string }[] = [];
  for (const [key, changes] of seen) {
    const first = changes[0] as SchemaChange;
    const hinted = hints.get(key);
    const types = new Set(changes.map((change) => change.type));
    if (hinted === undefined && types.size > 1) {
      const described = changes.map((change) => `${change.type} (${change.files} file(s))`).join(" and ");
      throw new InvalidInputError(
        "schema",
        `column ${first.column} was seen as ${described}: add \`${first.column} <TYPE>\` to the ingestion's ` +
          "schemaHints, apply it, then approve again",
      );
    }
    columns.push({ column: first.column, type: hinted ?? first.type });
  }
  return columns;
}
