import { errorMessage, type Logger } from "@lakeferry/core";
import {
  pendingFiles,
  reclaimExpiredLeases,
  unresolvedBatches,
  type Database,
  type FileRef,
  type Ingestion,
} from "@lakeferry/db";
import { ingestJobId, type IngestQueue } from "@lakeferry/queue";
import { resolveBatch } from "./batch-recovery.ts";
import { enqueueFiles } from "./enqueue-files.ts";
import type { BatchWriter } from "./group-commit-batcher.ts";
import { IngestionCache } from "./ingestion-cache.ts";

export interface ReconcilerOptions {
  db: Database;
  queue: IngestQueue;
  writer: BatchWriter;
  logger: Logger;
  /** Time between passes, in ms (the first pass runs at `start`). Default 30 000. */
  intervalMs?: number;
  /**
   * A batch OPEN for longer than this (ms) is checked against its table's snapshots; one whose files are
   * still leased is left to its writer whatever its age. Default 60 000.
   */
  batchGraceMs?: number;
  /**
   * A PENDING file must have been so for this long (ms) before it counts as having lost its job, so that
   * files just registered are not enqueued twice over. Default 5 000.
   */
  pendingGraceMs?: number;
}

/** What one pass did. */
export interface ReconcileResult {
  /** PENDING files that had no live job and were enqueued again. */
  requeued: number;
  /** PROCESSING files whose lease expired, made PENDING and enqueued again. */
  reclaimed: number;
  /** OPEN batches resolved (COMMITTED from the table's snapshots, or ABANDONED). */
  batchesResolved: number;
}

const PAGE = 1_000;

/**
 * Postgres is the truth, Redis is disposable: periodically (and at start) resolves write batches left OPEN
 * by crashed writers, reclaims PROCESSING files whose lease expired, and re-enqueues PENDING files that have
 * no live job (Redis flushed or a job lost). Any number of reconcilers may run: every step is idempotent.
 */
export class Reconciler {
  readonly #db: Database;
  readonly #queue: IngestQueue;
  readonly #writer: BatchWriter;
  readonly #logger: Logger;
  readonly #intervalMs: number;
  readonly #batchGraceMs: number;
  readonly #pendingGraceMs: number;
  readonly #ingestions: IngestionCache;
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<ReconcileResult> | undefined;
  #started = false;

  constructor(options: ReconcilerOptions) {
    this.#db = options.db;
    this.#queue = options.queue;
    this.#writer = options.writer;
    this.#logger = options.logger;
    this.#intervalMs = options.intervalMs ?? 30_000;
    this.#batchGraceMs = options.batchGraceMs ?? 60_000;
    this.#pendingGraceMs = options.pendingGraceMs ?? 5_000;
    this.#ingestions = new IngestionCache(options.db);
  }

  /** One pass. Concurrent calls share the running pass. */
  runOnce(): Promise<ReconcileResult> {
    this.#running ??= this.#pass().finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** Runs a pass now and then every `intervalMs` until closed. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    const tick = (): void => {
      this.runOnce()
        .catch((err: unknown) => this.#logger.warn({ err: errorMessage(err) }, "reconcile pass failed"))
        .finally(() => {
          if (!this.#abort.signal.aborted) {
            this.#timer = setTimeout(tick, this.#intervalMs);
            this.#timer.unref();
          }
        });
    };
    tick();
  }

  /** Stops the timer and waits for a running pass (its Spark lookups are cancelled). */
  async close(): Promise<void> {
    this.#abort.abort();
    clearTimeout(this.#timer);
    await this.#running?.catch(() => {});
  }

  async #pass(): Promise<ReconcileResult> {
    const batchesResolved = await this.#resolveOpenBatches();
    const reclaimed = await this.#reclaimExpired();
    const requeued = await this.#requeueOrphans();
    const result = { requeued, reclaimed, batchesResolved };
    if (requeued + reclaimed + batchesResolved > 0) this.#logger.info(result, "reconciled");
    else this.#logger.debug(result, "reconciled: nothing to do");
    return result;
  }

  async #resolveOpenBatches(): Promise<number> {
    let resolved = 0;
    const batches = await unresolvedBatches(this.#db, { olderThanMs: this.#batchGraceMs });
    for (const batch of batches) {
      if (this.#abort.signal.aborted) break;
      try {
        const { resolution } = await resolveBatch(this.#db, this.#writer, batch.id, {
          skipLive: true,
          logger: this.#logger,
          signal: this.#abort.signal,
        });
        if (resolution !== "live") resolved += 1;
      } catch (err) {
        // Spark down, say: the batch stays OPEN and its files stay put until a later pass.
        this.#logger.warn(
          { batchId: batch.id, table: batch.table, err: errorMessage(err) },
          "could not resolve batch",
        );
      }
    }
    return resolved;
  }

  async #reclaimExpired(): Promise<number> {
    let total = 0;
    for (;;) {
      const reclaimed = await reclaimExpiredLeases(this.#db, { limit: PAGE });
      total += reclaimed.length;
      await this.#enqueue(reclaimed);
      if (reclaimed.length < PAGE) return total;
    }
  }

  async #requeueOrphans(): Promise<number> {
    let total = 0;
    let afterId: number | undefined;
    for (;;) {
      const page = await pendingFiles(this.#db, {
        limit: PAGE,
        olderThanMs: this.#pendingGraceMs,
        ...(afterId === undefined ? {} : { afterId }),
      });
      if (page.length === 0) return total;
      afterId = page[page.length - 1]?.id;
      const live = await this.#queue.liveJobIds(
        page.map((file) => ingestJobId({ fileId: file.id, version: file.version })),
      );
      const orphans = page.filter(
        (file) => !live.has(ingestJobId({ fileId: file.id, version: file.version })),
      );
      total += await this.#enqueue(orphans);
      if (page.length < PAGE) return total;
    }
  }

  /** Enqueues files (grouped by ingestion for their retry policies); returns how many jobs were new. */
  async #enqueue(files: (FileRef & { ingestionId: number })[]): Promise<number> {
    const byIngestion = new Map<number, FileRef[]>();
    for (const file of files) {
      const group = byIngestion.get(file.ingestionId) ?? [];
      group.push(file);
      byIngestion.set(file.ingestionId, group);
    }
    let added = 0;
    for (const [ingestionId, group] of byIngestion) {
      const ingestion: Ingestion | undefined = await this.#ingestions.get(ingestionId);
      if (!ingestion) continue;
      added += await enqueueFiles(this.#queue, ingestion, group);
    }
    return added;
  }
}
