import { ARCHIVED_TABLES } from "@lakeferry/db";
import { parseTableName } from "@lakeferry/iceberg";
import { StatePruner, type PruneReport } from "@lakeferry/pipeline";
import { EXIT_OK } from "../exit-codes.ts";
import { printJson, printLine } from "../output.ts";
import type { CliServices } from "../services.ts";

export interface PruneOptions {
  dryRun?: boolean;
  /** Retention in days; default the environment's (LAKEFERRY_STATE_RETENTION_DAYS). */
  olderThanDays?: number;
  /** Default the environment's (LAKEFERRY_STATE_ARCHIVE_TABLE). */
  archiveTable?: string;
  json?: boolean;
}

const DAY_MS = 86_400_000;

/**
 * `lakeferry prune`: archives settled attempts, file versions, write batches (with their members) and finished
 * runs (with their refusals) older than the retention to the Iceberg audit table, then deletes them from
 * Postgres; prints the rows per table. With --dry-run, counts what would go and changes nothing (no Spark
 * needed). Waits for nothing: exit 2 when another prune is running.
 */
export async function pruneCommand(s: CliServices, options: PruneOptions): Promise<number> {
  const archiveTable = options.archiveTable ?? s.config.stateArchiveTable;
  parseTableName(archiveTable, "--archive-table");
  const days = options.olderThanDays ?? s.config.stateRetentionDays;
  const db = await s.db();
  const pruner = new StatePruner({
    db,
    ...(options.dryRun ? {} : { spark: await s.spark() }),
    logger: s.logger,
    retentionMs: days * DAY_MS,
    archiveTable,
  });
  const report = await pruner.prune({ dryRun: options.dryRun ?? false });
  if (options.json) printJson(report);
  else for (const line of summary(report, days)) printLine(line);
  return EXIT_OK;
}

function summary(report: PruneReport, days: number): string[] {
  const width = Math.max(...ARCHIVED_TABLES.map((table) => table.length));
  const lines = [
    report.dryRun
      ? `dry run: rows settled before ${report.before.toISOString()} (${days} days) that would be archived and deleted:`
      : `rows settled before ${report.before.toISOString()} (${days} days), archived to ${report.archiveTable} and deleted:`,
    ...ARCHIVED_TABLES.map((table) => `  ${table.padEnd(width)}  ${report.deleted[table]}`),
  ];
  if (!report.dryRun) {
    const deleted = Object.values(report.deleted).reduce((sum, n) => sum + n, 0);
    const extra = report.archived - deleted;
    lines.push(
      `${report.archived} rows archived${extra > 0 ? ` (${extra} of them back in use and kept; archived again when pruned)` : ""} in ${(report.ms / 1000).toFixed(1)} s`,
    );
  }
  return lines;
}
