import { listSchemaChanges } from "@lakeferry/db";
import { approveSchemaChanges } from "@lakeferry/pipeline";
import { printJson, printLine, printTable, sourceRelative } from "../output.ts";
import type { CliServices } from "../services.ts";

/**
 * `lakeferry schema diff NAME`: the columns files brought that the table lacks (under `failOnNewColumns`),
 * pending first: each with its type, the files skipped for it and one of them; then the approved ones.
 */
export async function schemaDiffCommand(
  s: CliServices,
  name: string,
  options: { json?: boolean; all?: boolean },
): Promise<void> {
  const ingestion = await s.ingestion(name);
  const changes = await listSchemaChanges(await s.db(), ingestion.id, { pendingOnly: options.all !== true });
  if (options.json) {
    printJson({ ingestion: name, table: ingestion.targetTable, changes });
    return;
  }
  const pending = changes.filter((change) => change.approvedAt === null);
  if (changes.length === 0) {
    printLine(`${name}: no new column waits for approval (${ingestion.targetTable})`);
    return;
  }
  printLine(`${ingestion.targetTable}: ${pending.length} new column(s) wait for approval`);
  printTable(
    changes.map((change) => ({
      change: change.approvedAt === null ? `+ ${change.column}` : `  ${change.column}`,
      type: change.type,
      files: change.files,
      example: sourceRelative(change.exampleFile, ingestion.sourceUri),
      firstSeen: change.firstSeenAt,
      approved: change.approvedAt ?? "",
    })),
  );
  if (pending.length > 0) printLine(`approve with: lakeferry schema approve ${name}`);
}

/**
 * `lakeferry schema approve NAME`: adds the pending columns to the table and queues the files skipped for
 * them again.
 */
export async function schemaApproveCommand(
  s: CliServices,
  name: string,
  options: { json?: boolean },
): Promise<void> {
  const ingestion = await s.ingestion(name);
  const approval = await approveSchemaChanges(
    { db: await s.db(), spark: await s.spark(), ingestQueue: await s.ingestQueue() },
    ingestion,
  );
  if (options.json) {
    printJson(approval);
    return;
  }
  const columns = approval.approved.map((column) => `${column.column} ${column.type}`).join(", ");
  printLine(
    approval.approved.length === 0
      ? `${name}: no new column waited for approval`
      : `${ingestion.targetTable}: approved ${columns}` +
          (approval.added.length < approval.approved.length ? " (some were in the table already)" : ""),
  );
  printLine(`queued ${approval.requeued} skipped file(s) of ${name} again`);
}
