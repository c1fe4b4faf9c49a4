import { randomUUID } from "node:crypto";
import {
  MAINTENANCE_TASKS,
  TableMaintainer,
  TableWriteLeases,
  type MaintenanceTask,
} from "@lakeferry/pipeline";
import { EXIT_INVALID, EXIT_OK } from "../exit-codes.ts";
import { printJson, printLine } from "../output.ts";
import type { CliServices } from "../services.ts";

export interface MaintainOptions {
  /** One task; every task that is on when absent. */
  task?: string;
  json?: boolean;
}

/**
 * `lakeferry maintain NAME`: runs the ingestion's table maintenance now, in this process, with its settings
 * (expiry, compaction, manifest rewrite, in that order; a task that is off is skipped), each waiting for the
 * table's write lease in turn with the workers. Exit 0 when every task ran or was off; 1 for a bad --task; 2 when a task failed.
 */
export async function maintainCommand(
  s: CliServices,
  name: string,
  options: MaintainOptions,
): Promise<number> {
  const tasks = options.task === undefined ? [...MAINTENANCE_TASKS] : [options.task];
  const unknown = tasks.find((task) => !(MAINTENANCE_TASKS as readonly string[]).includes(task));
  if (unknown !== undefined) {
    process.stderr.write(
      `lakeferry: --task ${unknown} is not a task; use one of ${MAINTENANCE_TASKS.join(", ")}\n`,
    );
    return EXIT_INVALID;
  }
  const ctx = await s.pipeline();
  const ingestion = await s.ingestion(name);
  const spark = await s.spark();
  const leases = new TableWriteLeases({
    db: ctx.db,
    holder: `cli-${randomUUID()}`,
    logger: ctx.logger,
    ttlMs: 60_000,
  });
  const maintainer = new TableMaintainer({ db: ctx.db, spark, leases, logger: ctx.logger });
  const reports = [];
  for (const task of tasks as MaintenanceTask[]) {
    const report = await maintainer.run(ingestion, task, new AbortController().signal);
    reports.push(report);
    if (!options.json) printLine(summary(report));
  }
  if (options.json) printJson(reports);
  return EXIT_OK;
}

function summary(report: Awaited<ReturnType<TableMaintainer["run"]>>): string {
  if (report.kind === "off") return `${report.task}: off for this ingestion`;
  if (report.kind === "refused") return `${report.task}: not run: ${report.reason}`;
  const seconds = `${(report.ms / 1000).toFixed(1)} s`;
  switch (report.task) {
    case "expireSnapshots":
      return (
        `expireSnapshots: before ${report.olderThan.toISOString()}${report.heldBack ? " (held back by a batch still to publish)" : ""}, ` +
        `${report.result.deletedDataFiles} data files and ${report.result.deletedManifestLists} snapshots' manifest lists removed in ${seconds}`
      );
    case "compaction":
      return (
        `compaction: ${report.before.files} → ${report.after.files} data files ` +
        `(average ${Math.round(report.before.averageBytes / 1024)} → ${Math.round(report.after.averageBytes / 1024)} KiB) in ${seconds}`
      );
    case "rewriteManifests":
      return `rewriteManifests: ${report.result.rewrittenManifests} → ${report.result.addedManifests} manifests in ${seconds}`;
  }
}
