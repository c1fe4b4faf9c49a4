import { randomBytes, randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { errorMessage, InvalidInputError, LakeferryError, type Logger } from "@lakeferry/core";
import {
  acquireMaintenanceLease,
  ARCHIVED_TABLES,
  databaseNow,
  deletePrunedRows,
  prunableRows,
  PRUNED_TABLES,
  releaseMaintenanceLease,
  takePeriodicTurn,
  type ArchivedRow,
  type ArchivedTable,
  type Database,
  type PruneCounts,
  type PruneCursor,
  type PrunedTable,
} from "@lakeferry/db";
import { appendToStateArchive, DEFAULT_STATE_ARCHIVE_TABLE, ensureStateArchive } from "@lakeferry/iceberg";
import type { SparkConnectClient } from "@lakeferry/spark-connect";

export interface StatePrunerOptions {
  db: Database;
  /** Where pruned rows are archived before they are deleted. Needed unless `archive` is false. */
  spark?: SparkConnectClient;
  logger: Logger;
  /** Rows settled longer ago than this are pruned, in ms. Default 90 days. */
  retentionMs?: number;
  /** The Iceberg table rows are archived to (`catalog.namespace.table`). Default `lake.lakeferry.state_archive`. */
  archiveTable?: string;
  /**
   * False deletes without archiving (benchmarks, or a deployment that keeps no audit trail). Default true.
   */
  archive?: boolean;
  /**
   * Rows read per statement (a window in key order): each statement's cost stays bounded whatever the
   * backlog. Batches and runs, which carry their members and refusals along, are read a tenth as many at
   * a time. Default 5,000.
   */
  windowRows?: number;
  /** Rows gathered before one append to the archive (one Iceberg commit). Default 20,000. */
  archiveChunkRows?: number;
  /** This process's name in the prune lease. Default `<host>-<pid>-<random>`. */
  holder?: string;
  /** Deadline of each archive append, in ms. Default 10 minutes. */
  appendDeadlineMs?: number;
}

/** What one prune did (or, for a dry run, would do). */
export interface PruneReport {
  dryRun: boolean;
  /** Rows settled before this moment (database clock) were pruned. */
  before: Date;
  /** Where they were archived; null when not archived (a dry run, or `archive: false`). */
  archiveTable: string | null;
  /** Rows deleted per table (for a dry run: rows that would be). Every archived table is present. */
  deleted: Record<ArchivedTable, number>;
  /**
   * Rows appended to the archive. More than deleted when a row came back into use between its archiving and
   * its delete (it stays, and is archived again when it is pruned).
   */
  archived: number;
  ms: number;
}

/** Another prune holds the fleet's prune lease. Retryable: try again once it is done. */
export class PruneBusyError extends LakeferryError {
  constructor() {
    super("PRUNE_BUSY", "another prune is running (lease state-prune); try again once it is done", {
      retryable: true,
    });
  }
}

/** The lease a prune holds while it runs, one at a time across the fleet (CLI and schedule alike). */
export const PRUNE_LEASE = "state-prune";
/** The turn a scheduled prune takes, at most once per interval across the fleet. */
export const PRUNE_SCHEDULE_TURN = "state-prune:schedule";

const DAY_MS = 86_400_000;
const LEASE_MS = 10 * 60_000;

/**
 * State retention: archives settled attempts, file versions, write batches (with their members) and
 * finished runs (with their refusals) older than the retention to an Iceberg audit table, then deletes
 * them from Postgres. processed_files keeps every file's row (path, current etag, size, modified time,
 * status), so a pruned file is never ingested again. Archive before delete, a window at a time: a prune
 * that stops between the two leaves the rows in Postgres, and the next one archives them again (the
 * archive's `source_table` and `row_key` tell the copies apart). Nothing in flight is pruned: open or
 * publishing batches, running runs, the attempts and versions of PENDING or PROCESSING files, the batch a
 * file's next claim must settle first.
 */
export class StatePruner {
  readonly holder: string;
  readonly #db: Database;
  readonly #spark: SparkConnectClient | undefined;
  readonly #logger: Logger;
  readonly #retentionMs: number;
  readonly #archiveTable: string;
  readonly #archive: boolean;
  readonly #windowRows: number;
  readonly #archiveChunkRows: number;
  readonly #appendDeadlineMs: number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<unknown> | undefined;
  readonly #abort = new AbortController();

  constructor(options: StatePrunerOptions) {
    this.#db = options.db;
    this.#spark = options.spark;
    this.#logger = options.logger;
    this.#retentionMs = whole("retentionMs", options.retentionMs ?? 90 * DAY_MS, 1);
    this.#archiveTable = options.archiveTable ?? DEFAULT_STATE_ARCHIVE_TABLE;
    this.#archive = options.archive ?? true;
    this.#windowRows = whole("windowRows", options.windowRows ?? 5_000, 10);
    this.#archiveChunkRows = whole("archiveChunkRows", options.archiveChunkRows ?? 20_000, 1);
    this.#appendDeadlineMs = whole("appendDeadlineMs", options.appendDeadlineMs ?? 10 * 60_000, 1);
    this.holder = options.holder ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  }

  /**
   * Prunes now. A dry run only counts (it needs no Spark and takes no lease).
   * @throws PruneBusyError when another prune runs; Postgres' and Spark's errors as classified (what was
   * archived and deleted before stays so; the next prune goes on from there).
   */
  async prune(options: { dryRun?: boolean; signal?: AbortSignal } = {}): Promise<PruneReport> {
    const dryRun = options.dryRun ?? false;
    const signal = options.signal ?? new AbortController().signal;
    const started = performance.now();
    const archiving = !dryRun && this.#archive;
    const spark = this.#spark;
    if (archiving && spark === undefined) {
      throw new InvalidInputError("spark", "is needed to archive pruned rows (or set archive: false)");
    }
    const before = new Date((await databaseNow(this.#db)).getTime() - this.#retentionMs);
    const report: PruneReport = {
      dryRun,
      before,
      archiveTable: archiving ? this.#archiveTable : null,
      deleted: Object.fromEntries(ARCHIVED_TABLES.map((table) => [table, 0])) as PruneReport["deleted"],
      archived: 0,
      ms: 0,
    };
    if (!dryRun) await this.#takeLease();
    try {
      const run = { before, dryRun, archiving, pruneId: randomUUID(), signal, report, archiveReady: false };
      for (const table of PRUNED_TABLES) await this.#pruneTable(table, run);
    } finally {
      if (!dryRun) {
        await releaseMaintenanceLease(this.#db, { name: PRUNE_LEASE, holder: this.holder }).catch(
          (err: unknown) =>
            this.#logger.warn({ err: errorMessage(err) }, "could not release the prune lease"),
        );
      }
    }
    report.ms = Math.round(performance.now() - started);
    this.#logger.info({ ...report }, dryRun ? "state prune (dry run)" : "state pruned");
    return report;
  }

  /**
   * Prunes about every `everyMs` (default a day), at most once per `everyMs` across the fleet: every
   * `checkEveryMs` (default an hour, spread by ±20 %) this process asks for the fleet's turn, and prunes if
   * it got it. Failures are logged; the next turn tries again.
   */
  start(options: { everyMs?: number; checkEveryMs?: number } = {}): void {
    if (this.#timer !== undefined || this.#abort.signal.aborted) return;
    const everyMs = whole("everyMs", options.everyMs ?? DAY_MS, 1);
    const checkEveryMs = whole("checkEveryMs", options.checkEveryMs ?? Math.min(3_600_000, everyMs), 1);
    const tick = (): void => {
      this.#running = this.#pruneIfDue(everyMs).finally(() => {
        this.#running = undefined;
        if (this.#abort.signal.aborted) return;
        this.#timer = setTimeout(tick, Math.round(checkEveryMs * (0.8 + 0.4 * Math.random())));
        this.#timer.unref();
      });
    };
    this.#timer = setTimeout(tick, Math.round(checkEveryMs * 0.2 * Math.random()));
    this.#timer.unref();
  }

  /** Stops the schedule and waits for a scheduled prune to stop (it is aborted between windows). */
  async close(): Promise<void> {
    this.#abort.abort();
    clearTimeout(this.#timer);
    await this.#running;
  }

  async #pruneIfDue(everyMs: number): Promise<void> {
    try {
      const turn = await takePeriodicTurn(this.#db, {
        name: PRUNE_SCHEDULE_TURN,
        holder: this.holder,
        everyMs,
      });
      if (!turn) return;
      await this.prune({ signal: this.#abort.signal });
    } catch (err) {
      if (this.#abort.signal.aborted) return;
      this.#logger.warn({ err: errorMessage(err) }, "scheduled state prune failed");
    }
  }

  async #takeLease(): Promise<void> {
    const held = await acquireMaintenanceLease(this.#db, {
      name: PRUNE_LEASE,
      holder: this.holder,
      ttlMs: LEASE_MS,
    });
    if (!held) throw new PruneBusyError();
  }

  /** Walks one table window by window, archiving in chunks and deleting what each chunk archived. */
  async #pruneTable(
    table: PrunedTable,
    run: {
      before: Date;
      dryRun: boolean;
      archiving: boolean;
      pruneId: string;
      signal: AbortSignal;
      report: PruneReport;
      /** Whether the archive table is known to exist (it is created on the first append, not before). */
      archiveReady: boolean;
    },
  ): Promise<void> {
    const scan =
      table === "write_batches" || table === "runs" ? Math.ceil(this.#windowRows / 10) : this.#windowRows;
    let pendingRows: ArchivedRow[] = [];
    let pendingKeys: string[] = [];
    const flush = async (): Promise<void> => {
      if (pendingKeys.length === 0) return;
      // The lease is renewed before each append and each delete: a prune whose lease lapsed (another took
      // over) stops here.
      await this.#takeLease();
      if (run.archiving && this.#spark) {
        if (!run.archiveReady) {
          await ensureStateArchive(this.#spark, this.#archiveTable, { signal: run.signal });
          run.archiveReady = true;
        }
        await appendToStateArchive(
          this.#spark,
          this.#archiveTable,
          {
            pruneId: run.pruneId,
            rows: pendingRows.map((row) => ({
              sourceTable: row.table,
              rowKey: row.key,
              ingestionId: row.ingestionId,
              rowTime: row.at,
              rowJson: row.row,
            })),
          },
          { signal: run.signal, deadlineMs: this.#appendDeadlineMs },
        );
        run.report.archived += pendingRows.length;
      }
      await this.#takeLease();
      const deleted = await deletePrunedRows(this.#db, { table, before: run.before, keys: pendingKeys });
      add(run.report.deleted, deleted);
      pendingRows = [];
      pendingKeys = [];
    };
    let after: PruneCursor | undefined;
    for (;;) {
      if (run.signal.aborted) throw run.signal.reason;
      const window = await prunableRows(this.#db, {
        table,
        before: run.before,
        scan,
        ...(after ? { after } : {}),
      });
      if (run.dryRun) {
        for (const row of window.rows) run.report.deleted[row.table] += 1;
      } else if (window.keys.length > 0) {
        pendingRows.push(...window.rows);
        pendingKeys.push(...window.keys);
        if (pendingRows.length >= this.#archiveChunkRows) await flush();
      }
      if (window.next === null) break;
      after = window.next;
    }
    await flush();
  }
}

function add(total: Record<ArchivedTable, number>, counts: PruneCounts): void {
  for (const [table, count] of Object.entries(counts) as [ArchivedTable, number][]) total[table] += count;
}

function whole(field: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new InvalidInputError(field, `must be a whole number ≥ ${min}, got ${value}`);
  }
  return value;
}
