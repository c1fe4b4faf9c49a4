import { randomUUID } from "node:crypto";
import {
  MAINTENANCE_TASKS,
  SourceCleaner,
  TableMaintainer,
  TableWriteLeases,
  type MaintenanceReport,
  type TableMaintenanceReport,
  type MaintenanceTask,
  type SourceCleanupReport,
} from "@lakeferry/pipeline";
import { EXIT_FAILED, EXIT_INVALID, EXIT_OK } from "../exit-codes.ts";
import { printJson, printLine } from "../output.ts";
import type { CliServices } from "../services.ts";

export interface MaintainOptions {
  /** One task; every task that is on when absent. */
  task?: string;
  json?: boolean;
}

/** Every task `maintain` runs: the table's, then the source cleanup. */
const TASKS = [...MAINTENANCE_TASKS, "cleanSource"] as const;

/**
 * `lakeferry maintain NAME`: runs the ingestion's maintenance now, in this process, with its settings
 * (expiry, compaction, manifest rewrite, each waiting for the table's write lease in turn with the workers;
 * then source cleanup, `cleanSource`, of everything due; a task that is off is skipped). Exit 0 when every
 * task ran or was off; 1 for a bad --task; 2 when a task failed, or the cleanup of a file did (recorded, and
 * tried again by the next run).
 */
export async function maintainCommand(
  s: CliServices,
  name: string,
  options: MaintainOptions,
): Promise<number> {
  const tasks = options.task === undefined ? [...TASKS] : [options.task];
  const unknown = tasks.find((task) => !(TASKS as readonly string[]).includes(task));
  if (unknown !== undefined) {
    process.stderr.write(`lakeferry: --task ${unknown} is not a task; use one of ${TASKS.join(", ")}\n`);
    return EXIT_INVALID;
  }
  const ctx = await s.pipeline();
  const ingestion = await s.ingestion(name);
  const reports: (MaintenanceReport | ({ task: "cleanSource" } & SourceCleanupReport))[] = [];
  const tableTasks = tasks.filter((task): task is MaintenanceTask => task !== "cleanSource");
  if (tableTasks.length > 0) {
    const spark = await s.spark();
    const leases = new TableWriteLeases({
      db: ctx.db,
      holder: `cli-${randomUUID()}`,
      logger: ctx.logger,
      ttlMs: 60_000,
    });
    const maintainer = new TableMaintainer({ db: ctx.db, spark, leases, logger: ctx.logger });
    for (const task of tableTasks) {
      const report = await maintainer.run(ingestion, task, new AbortController().signal);
      reports.push(report);
      if (!options.json) {
        printLine(summary(report));
        if (report.rejected) printLine(`  ${report.rejected.table}: ${summary(report.rejected)}`);
      }
    }
  }
  if (tasks.includes("cleanSource")) {
    const cleaner = new SourceCleaner({
      db: ctx.db,
      logger: ctx.logger,
      ...(ctx.storeOptions ? { storeOptions: ctx.storeOptions } : {}),
      maxFilesPerRun: Number.MAX_SAFE_INTEGER,
    });
    const report = await cleaner.run(ingestion, new AbortController().signal);
    reports.push({ task: "cleanSource", ...report });
    if (!options.json) printLine(cleanupSummary(report));
  }
  if (options.json) printJson(reports);
  const cleanupFailed = reports.some(
    (report) => report.task === "cleanSource" && report.kind === "done" && report.failed > 0,
  );
  return cleanupFailed ? EXIT_FAILED : EXIT_OK;
}

function cleanupSummary(report: SourceCleanupReport): string {
  if (report.kind === "off") return "cleanSource: off for this ingestion";
  if (report.kind === "busy") return "cleanSource: another run is cleaning this source now; nothing done";
  const what = report.mode === "move" ? `${report.moved} moved` : `${report.deleted} deleted`;
  return (
    `cleanSource: ${what}, ${report.alreadyGone} already gone, ${report.keptChanged} left (changed since ingested), ` +
    (report.keptOutside > 0 ? `${report.keptOutside} left (outside the current source), ` : "") +
    `${report.failed} failed (tried again on the next run) in ${(report.ms / 1000).toFixed(1)} s`
  );
}

function summary(report: TableMaintenanceReport): string {
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
