import { errorMessage, type Logger } from "@lakeferry/core";
import { listIngestions, oldestPendingBatchAt, type Database, type Ingestion } from "@lakeferry/db";
import {
  dataFileStats,
  expireSnapshots,
  rewriteDataFiles,
  rewriteManifests,
  rejectedTableOf,
  type CompactionResult,
  type DataFileStats,
  type ExpiryResult,
  type ManifestRewriteResult,
} from "@lakeferry/iceberg";
import { isTableNotFound, type SparkConnectClient } from "@lakeferry/spark-connect";
import { compactionConflict } from "./apply-ingestion.ts";
import { storedMaintenance, type MaintenanceSettings, type MaintenanceTask } from "./maintenance-settings.ts";
import type { TableWriteLeases } from "./table-write-lease.ts";

export interface TableMaintainerOptions {
  db: Database;
  /** The Spark Connect session maintenance runs in (one task at a time per maintainer). */
  spark: SparkConnectClient;
  /**
   * The fleet's table write leases: each task holds its table's, as a batch write does, so that a
   * compaction or manifest rewrite never commits while a batch of the table is being written and published.
   */
  leases: TableWriteLeases;
  logger: Logger;
  /**
   * How far before the oldest batch that may still be published expiry stops, in ms: room for the clocks of
   * Postgres (which stamps batches) and Spark (which stamps snapshots) to differ. Default 1 hour.
   */
  clockMarginMs?: number;
  /** Longest a task may run in Spark, in ms. Default 2 hours. */
  deadlineMs?: number;
}

/**
 * What one maintenance run did: on the ingestion's table, and (`rejected`) on its bad-record quarantine
 * table `<table>__rejected` when there is one, which the same batches write and the same task keeps.
 */
export type MaintenanceReport = TableMaintenanceReport & { rejected?: TableMaintenanceReport };

/** What one maintenance task did to one table. */
export type TableMaintenanceReport =
  /** The task is off for this ingestion (its schedule is null). */
  | { task: MaintenanceTask; table: string; kind: "off" }
  /** The task would break another ingestion of the table (a compaction where another replaces files). */
  | { task: MaintenanceTask; table: string; kind: "refused"; reason: string }
  | {
      task: "expireSnapshots";
      table: string;
      kind: "done";
      /** Snapshots committed before this moment were expired (unless among the last retainLast). */
      olderThan: Date;
      /** True when a batch that may still be published held the cutoff back from olderThanDays. */
      heldBack: boolean;
      result: ExpiryResult;
      ms: number;
    }
  | {
      task: "compaction";
      table: string;
      kind: "done";
      before: DataFileStats;
      after: DataFileStats;
      result: CompactionResult;
      ms: number;
    }
  | { task: "rewriteManifests"; table: string; kind: "done"; result: ManifestRewriteResult; ms: number };

const DAY_MS = 86_400_000;

/**
 * Runs an ingestion's table maintenance tasks: snapshot expiry, compaction (`rewrite_data_files`) and
 * manifest rewrite. Each task first takes the table's write lease, in turn with the batch writers, so it
 * never commits while a batch of the table is staged but not yet published (a compaction in between
 * would turn a `replace` batch's overwrite unpublishable, and any commit in between would make the
 * writers' commits retry).
 *
 * Safe with exactly-once recovery whatever the lease does: expiry never removes snapshots committed after
 * the oldest OPEN or PUBLISHING batch of the table was opened, so every batch that may still be published
 * keeps its staged snapshot and the lineage that tells whether it was published already; compaction keeps
 * each row's `_source_file` and `_ingested_at`, by which recovery finds a batch's rows.
 */
export class TableMaintainer {
  readonly #db: Database;
  readonly #spark: SparkConnectClient;
  readonly #leases: TableWriteLeases;
  readonly #logger: Logger;
  readonly #clockMarginMs: number;
  readonly #deadlineMs: number;

  constructor(options: TableMaintainerOptions) {
    this.#db = options.db;
    this.#spark = options.spark;
    this.#leases = options.leases;
    this.#logger = options.logger;
    this.#clockMarginMs = options.clockMarginMs ?? 3_600_000;
    this.#deadlineMs = options.deadlineMs ?? 7_200_000;
  }

  /**
   * Runs `task` on the ingestion's table with its settings, holding the table's write lease.
   * @throws the abort reason when `signal` aborts while waiting; Spark's errors as classified.
   */
  async run(ingestion: Ingestion, task: MaintenanceTask, signal: AbortSignal): Promise<MaintenanceReport> {
    const settings = storedMaintenance(ingestion.maintenance, ingestion);
    const table = ingestion.targetTable;
    if (settings[task].schedule === null) return { task, table, kind: "off" };
    const log = this.#logger.child({ ingestion: ingestion.name, ingestionId: ingestion.id, table, task });
    if (task === "compaction") {
      // Checked at apply too; here for ingestions applied before that check, or edited in Postgres.
      const reason = compactionConflict(ingestion, await listIngestions(this.#db));
      if (reason !== undefined) {
        log.warn({ reason }, "table maintenance refused");
        return { task, table, kind: "refused", reason };
      }
    }
    const release = await this.#leases.acquire(table, signal, { holdMs: this.#deadlineMs });
    const started = performance.now();
    try {
      const report: MaintenanceReport = await this.#runHolding(table, table, task, settings, signal, started);
      log.info({ ...report, task: undefined, table: undefined, kind: undefined }, "table maintenance done");
      // The quarantine table's batches are the table's (staged and published with its rows, under its
      // lease): the same task, with the same expiry horizon, while the lease is held.
      const quarantine = rejectedTableOf(table);
      try {
        report.rejected = await this.#runHolding(
          quarantine,
          table,
          task,
          settings,
          signal,
          performance.now(),
        );
        log.info({ ...report.rejected, task: undefined, kind: undefined }, "table maintenance done");
      } catch (error) {
        if (!isTableNotFound(error)) throw error;
      }
      return report;
    } catch (error) {
      log.warn({ err: errorMessage(error) }, "table maintenance failed");
      throw error;
    } finally {
      await release();
    }
  }

  /** Runs `task` on `table`; `leased` is the ingestion's table, whose pending batches bound expiry. */
  async #runHolding(
    table: string,
    leased: string,
    task: MaintenanceTask,
    settings: MaintenanceSettings,
    signal: AbortSignal,
    started: number,
  ): Promise<TableMaintenanceReport> {
    const execution = { signal, deadlineMs: this.#deadlineMs };
    const ms = (): number => Math.round(performance.now() - started);
    switch (task) {
      case "expireSnapshots": {
        const { olderThan, heldBack } = await this.expiryCutoff(
          leased,
          settings.expireSnapshots.olderThanDays,
        );
        const result = await expireSnapshots(
          this.#spark,
          table,
          { olderThan, retainLast: settings.expireSnapshots.retainLast },
          execution,
        );
        return { task, table, kind: "done", olderThan, heldBack, result, ms: ms() };
      }
      case "compaction": {
        const before = await dataFileStats(this.#spark, table, execution);
        const result = await rewriteDataFiles(this.#spark, table, settings.compaction, execution);
        const after = await dataFileStats(this.#spark, table, execution);
        return { task, table, kind: "done", before, after, result, ms: ms() };
      }
      case "rewriteManifests": {
        const result = await rewriteManifests(this.#spark, table, execution);
        return { task, table, kind: "done", result, ms: ms() };
      }
    }
  }

  /**
   * The moment before which snapshots may be expired: `olderThanDays` ago, or earlier when a batch of the
   * table that may still be published (OPEN or PUBLISHING) was opened since (less the clock margin).
   */
  async expiryCutoff(table: string, olderThanDays: number): Promise<{ olderThan: Date; heldBack: boolean }> {
    const byAge = Date.now() - olderThanDays * DAY_MS;
    const pending = await oldestPendingBatchAt(this.#db, table);
    const horizon = pending === null ? Infinity : pending.getTime() - this.#clockMarginMs;
    return { olderThan: new Date(Math.min(byAge, horizon)), heldBack: horizon < byAge };
  }
}
