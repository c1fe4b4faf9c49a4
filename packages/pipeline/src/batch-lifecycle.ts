import { errorMessage, errorType, isRetryable, LakeferryError, outageOf, type Logger } from "@lakeferry/core";
import {
  abandonBatch,
  beginPublish,
  openBatch,
  readBatch,
  approvedSchemaChanges,
  recordOutcomes,
  recordSchemaChanges,
  resetFilesForRetry,
  type BatchRecord,
  type Database,
  type Outcome,
} from "@lakeferry/db";
import {
  ingestedAtNow,
  RefusedFilesError,
  rejectedTableOf,
  SchemaChangeError,
  type FileRecordCounts,
  type FileRefusal,
  type RefusedFile,
  type SchemaChangeRefusal,
  type PublishOutcome,
  type StagedWrite,
  type WriteBatch,
} from "@lakeferry/iceberg";
import { SparkConnectError, type ExecutionOptions } from "@lakeferry/spark-connect";
import type { BatchAttempt, BatchFile } from "./group-commit-batcher.ts";
import type { BatchOutcome, PipelineEvents, SettledStatus } from "./pipeline-events.ts";
import type { ReleaseTableWrite, TableWriteLeases } from "./table-write-lease.ts";

/** What the batch lifecycle writes through: `IcebergWriterPool` in production. */
export interface BatchWriter {
  stage(batch: WriteBatch, options?: ExecutionOptions): Promise<StagedWrite>;
  publish(table: string, stagedSnapshotId: string, options?: ExecutionOptions): Promise<PublishOutcome>;
  hasBatchRows(
    table: string,
    ingestedAtMicros: bigint,
    files: readonly string[],
    options?: ExecutionOptions,
  ): Promise<boolean>;
}

/** A file as its batch's lifecycle needs it: everything travels with the file, nothing is asked back. */
export interface LifecycleFile extends BatchFile {
  fileId: number;
  version: number;
  /** The path Spark reads the file by (the ingestion's path rules applied to `uri`). */
  readPath: string;
  /** The job runs its last attempt: a failure that counts against the file is final. */
  lastAttempt: boolean;
  log: Logger;
  /** The ingestion's name (for events). */
  ingestion: string;
  /** When this worker claimed the file (`performance.now()`), for the claim-to-settle duration. */
  claimedAt: number;
}

/**
 * How a write attempt ended, once the lifecycle has recorded what it can:
 * - `committed`: published and recorded; every file's rows are in the table once;
 * - `split`: a failure in a batch of several files, none of them blamed yet and nothing recorded for them:
 *   write them again in smaller batches until a failing file is alone; or, with `settled`, the files whose
 *   bad records decided their fate (recorded, each with its error): the others go again together;
 * - `failed`: not visible, never will be; each file's outcome is recorded (PENDING or FAILED, its attempt
 *   counted unless `error` is an outage);
 * - `fenced`: Postgres gave the batch up or a file was taken over before it could be published: nothing
 *   was published and the files are someone else's now;
 * - `in-doubt`: whether the batch was decided (or published) is unknown here (Postgres or Spark failed at
 *   the deciding moment); it stays for recovery, which publishes or abandons it.
 */
export type BatchVerdict =
  | { kind: "committed"; snapshotId: string | null; records: Map<string, number> }
  | { kind: "split"; error: unknown; settled?: Map<string, unknown> }
  | { kind: "failed"; error: unknown }
  | { kind: "fenced" }
  | { kind: "in-doubt"; error: unknown };

/** How resolving a batch left by someone else ended. */
export type BatchResolution = "committed" | "abandoned" | "live";

/** Crash points for fault tests: the process SIGKILLs itself there. Never set in production. */
export interface LifecycleFaults {
  /** After the staged snapshot is written, before Postgres decides. */
  crashAfterStage?: boolean;
  /** After Postgres decided (PUBLISHING), before the publish. */
  crashBeforePublish?: boolean;
  /** After the publish, before Postgres records it COMMITTED. */
  crashAfterCommit?: boolean;
}

export interface BatchLifecycleOptions {
  db: Database;
  writer: BatchWriter;
  /** This process's name in leases and batches. */
  workerId: string;
  logger: Logger;
  /**
   * How long this worker alone publishes a batch it decided, in ms; its files' leases are extended as long.
   * Recovery publishes a batch whose publisher did not finish in that time. Default 60 000.
   */
  publishLeaseMs?: number;
  /** When set, each write first takes its table's write lease: one write per table across the fleet. */
  tableLeases?: TableWriteLeases;
  /** Where `batch:finished`, `file:settled` and `spark:error` are announced. Default: nowhere. */
  events?: PipelineEvents;
  faults?: LifecycleFaults;
}

/** The batch was fenced off: given up on, or a file taken over, before it could be published. */
export class BatchFencedError extends LakeferryError {
  constructor(batchId: string) {
    super(
      "BATCH_FENCED",
      `batch ${batchId} was given up on before it could be published; nothing was written`,
      {
        retryable: true,
      },
    );
  }
}

/** Whether a batch was decided or published is unknown here; recovery settles it. Spends no attempt. */
export class BatchInDoubtError extends LakeferryError {
  readonly batchId: string;

  constructor(batchId: string, cause: unknown) {
    super("BATCH_IN_DOUBT", `batch ${batchId} is left for recovery: ${errorMessage(cause)}`, {
      retryable: true,
      cause,
      outage: outageOf(cause) ?? "spark",
    });
    this.batchId = batchId;
  }
}

/** The staged snapshot could not be published and its rows are not in the table: written again. */
export class BatchUnpublishableError extends LakeferryError {
  constructor(batchId: string, reason: string) {
    super("BATCH_UNPUBLISHABLE", `batch ${batchId} could not be published (${reason}); writing it again`, {
      retryable: true,
    });
  }
}

const PUBLISH_RETRY_DELAYS_MS = [250, 1_000, 2_000, 4_000, 8_000];
/** Room for the clocks of a worker and Postgres to differ when their times are compared. */
const CLOCK_ROOM_MS = 5_000;

/**
 * The one owner of a write batch's life: open, stage, decide, publish, record — and resolve a batch whose
 * writer is gone. Used by the file ingestor (its own batches, and a claimed file's earlier batch) and by
 * the reconciler.
 *
 * The fence: a batch is staged in Iceberg (invisible), then Postgres moves it OPEN → PUBLISHING with a
 * compare-and-set that fails if the batch was given up on or any of its files was taken over; only a
 * PUBLISHING batch is ever published, and every PUBLISHING batch is published (by its writer, else by
 * recovery, which first checks the table's rows so as not to publish twice once snapshots are expired).
 * So a batch is visible if and only if Postgres decided it, whatever the timing of crashes, pauses, dropped
 * connections and restarts; a late or repeated staged write is never seen.
 */
export class BatchLifecycle {
  readonly #db: Database;
  readonly #writer: BatchWriter;
  readonly #workerId: string;
  readonly #logger: Logger;
  readonly #publishLeaseMs: number;
  readonly #tableLeases: TableWriteLeases | undefined;
  readonly #faults: LifecycleFaults;
  readonly #events: PipelineEvents | undefined;

  constructor(options: BatchLifecycleOptions) {
    this.#db = options.db;
    this.#writer = options.writer;
    this.#workerId = options.workerId;
    this.#logger = options.logger;
    this.#publishLeaseMs = options.publishLeaseMs ?? 60_000;
    this.#tableLeases = options.tableLeases;
    this.#faults = options.faults ?? {};
    this.#events = options.events;
  }

  /**
   * Writes one attempt of a batch through the fence and records the outcome; see {@link BatchVerdict}.
   * With table leases, waits for its table's write lease first (and gives it back after).
   */
  async write(attempt: BatchAttempt<LifecycleFile>, signal: AbortSignal): Promise<BatchVerdict> {
    const started = performance.now();
    const verdict = await this.#writeAttempt(attempt, signal);
    if (this.#events !== undefined) announceBatch(this.#events, attempt, verdict, started);
    return verdict;
  }

  async #writeAttempt(attempt: BatchAttempt<LifecycleFile>, signal: AbortSignal): Promise<BatchVerdict> {
    const blamed = attempt.blamed;
    if (blamed !== undefined && attempt.files.length === 1 && ownFailure(attempt.target, blamed.error)) {
      // Spark named this file when its batch failed, and the error is the file's own: that is its fate,
      // found without reading it again.
      const log = this.#logger.child({ batchId: blamed.batchId, table: attempt.target.table });
      return {
        kind: "failed",
        error: await this.#recordFailures(attempt.files, blamed.error, blamed.batchId, log),
      };
    }
    if (this.#tableLeases === undefined) return this.#grownWrite(attempt, signal);
    let release: ReleaseTableWrite;
    try {
      // Held while the write may last: staging's deadline (for the files known now), then its publication.
      release = await this.#tableLeases.acquire(attempt.target.table, signal, {
        holdMs: stageDeadlineMs(attempt.files) + this.#publishLeaseMs,
      });
    } catch (error) {
      // Nothing opened, nothing written. A shutdown abort or an outage spends no attempt.
      const reason: unknown = signal.aborted ? signal.reason : error;
      const log = this.#logger.child({ batchId: attempt.batchId, table: attempt.target.table });
      const counted = !signal.aborted && outageOf(reason) === undefined;
      return {
        kind: "failed",
        error: await this.#recordFailures(attempt.files, reason, attempt.batchId, log, counted),
      };
    }
    try {
      return await this.#grownWrite(attempt, signal);
    } finally {
      await release();
    }
  }

  /**
   * The write may start now: the attempt first takes on the files its batcher adopts (files waiting for
   * their jobs, which arrived while it waited for the table), then is written with them.
   */
  async #grownWrite(attempt: BatchAttempt<LifecycleFile>, signal: AbortSignal): Promise<BatchVerdict> {
    if (attempt.grow !== undefined && !signal.aborted) {
      try {
        await attempt.grow();
      } catch (error) {
        // A throughput device only: the batch goes as it is.
        this.#logger.warn(
          { batchId: attempt.batchId, table: attempt.target.table, err: errorMessage(error) },
          "could not take on waiting files; writing the batch as it is",
        );
      }
    }
    return this.#write(attempt, signal);
  }

  async #write(attempt: BatchAttempt<LifecycleFile>, signal: AbortSignal): Promise<BatchVerdict> {
    const { batchId, target, files } = attempt;
    const log = this.#logger.child({ batchId, table: target.table, ingestionId: target.ingestionId });
    const ingestedAtMicros = ingestedAtNow().micros;
    // Where a batch's time goes, logged with its commit: Postgres open, Spark stage, decide, publish, record.
    const marks: Record<string, number> = {};
    let lap = performance.now();
    const mark = (step: string): void => {
      const now = performance.now();
      marks[step] = Math.round(now - lap);
      lap = now;
    };
    try {
      await openBatch(this.#db, {
        batchId,
        ingestionId: target.ingestionId,
        table: target.table,
        worker: this.#workerId,
        files: files.map((file) => ({ id: file.fileId, version: file.version })),
        ingestedAtMicros,
      });
    } catch (error) {
      // Nothing written, nothing recorded: the files' outcomes cannot be recorded either while Postgres fails.
      return { kind: "failed", error: await this.#recordFailures(files, error, batchId, log) };
    }

    mark("openMs");
    let staged: StagedWrite;
    try {
      staged = await this.#writer.stage(
        {
          batchId,
          table: target.table,
          format: target.format,
          ...(target.schema === undefined ? {} : { schema: target.schema }),
          options: target.options,
          files: files.map((file) => file.uri),
          readPaths: files.map((file) => file.readPath),
          isolateFiles: target.isolateFiles || isolatesForFree(files),
          mode: target.mode,
          schemaEvolution: target.schemaEvolution,
          ...(target.schemaHints === undefined ? {} : { schemaHints: target.schemaHints }),
          ...(target.rescuedDataColumn === undefined ? {} : { rescuedDataColumn: target.rescuedDataColumn }),
          ingestedAtMicros,
          ...(target.badRecords === undefined ? {} : { badRecords: target.badRecords }),
        },
        { signal, deadlineMs: stageDeadlineMs(files) },
      );
    } catch (error) {
      this.#announceSparkError(error);
      // Whatever happened to the staged write (it may still land on the server), it is never published.
      await abandonBatch(this.#db, {
        batchId,
        from: "OPEN",
        state: "FAILED",
        errorMessage: errorMessage(error),
      }).catch((err: unknown) =>
        log.warn({ err: errorMessage(err) }, "could not record the batch FAILED; recovery abandons it"),
      );
      if (signal.aborted) {
        // Every file gave up on the write (shutdown, lost job locks): not the files' fault.
        return { kind: "failed", error: await this.#recordFailures(files, error, batchId, log, false) };
      }
      if (error instanceof RefusedFilesError)
        return this.#recordRefused(files, error as RefusedFilesError, batchId, log, ingestedAtMicros);
      if (files.length > 1 && outageOf(error) === undefined) {
        log.info(
          { files: files.length, errorType: fileErrorType(error), error: errorMessage(error) },
          "batch failed; splitting it so that a failing file fails alone",
        );
        return { kind: "split", error };
      }
      return { kind: "failed", error: await this.#recordFailures(files, error, batchId, log) };
    }
    if (this.#faults.crashAfterStage) crash(log, "after-stage");
    if (staged.visible) {
      log.error(
        { table: target.table },
        "the table committed the batch at once instead of staging it (write.wap.enabled off?): deciding it now",
      );
    }

    mark("stageMs");
    let decided: boolean;
    try {
      decided = await beginPublish(this.#db, {
        batchId,
        worker: this.#workerId,
        stagedSnapshotId: staged.stagedSnapshotId,
        ...(staged.rejected === undefined
          ? {}
          : { rejectedStagedSnapshotId: staged.rejected.stagedSnapshotId }),
        records: files.map((file) => ({
          fileId: file.fileId,
          records: staged.records.get(file.uri) ?? 0,
          ...memberCounts(staged.recordCounts?.get(file.uri)),
        })),
        publishLeaseMs: this.#publishLeaseMs,
      });
    } catch (error) {
      log.warn({ err: errorMessage(error) }, "could not decide the batch; recovery publishes or abandons it");
      return { kind: "in-doubt", error: new BatchInDoubtError(batchId, error) };
    }
    if (!decided && staged.visible) {
      log.fatal(
        { files: files.length },
        "fence bypassed: the table committed a batch Postgres then gave up on; its files may be in the table twice",
      );
    }
    if (!decided) {
      await abandonBatch(this.#db, {
        batchId,
        from: "OPEN",
        state: "ABANDONED",
        errorMessage: "fenced: a file was taken over before the batch could be published",
      }).catch(() => undefined);
      log.warn(
        { files: files.length },
        "batch fenced off before publishing; its staged snapshot stays unpublished",
      );
      return { kind: "fenced" };
    }
    if (this.#faults.crashBeforePublish) crash(log, "before-publish");

    mark("decideMs");
    let published: PublishOutcome;
    let rejectedOutcome: PublishOutcome | undefined;
    try {
      const rejected = staged.rejected;
      // The bad records first: once the rows are visible, theirs are too.
      rejectedOutcome =
        rejected === undefined || rejected.visible === true
          ? undefined
          : await this.#publishWithRetries(rejected.table, rejected.stagedSnapshotId, log);
      published =
        rejectedOutcome?.kind === "unpublishable"
          ? rejectedOutcome
          : staged.visible
            ? { kind: "published", snapshotId: staged.stagedSnapshotId }
            : await this.#publishWithRetries(target.table, staged.stagedSnapshotId, log);
    } catch (error) {
      this.#announceSparkError(error);
      log.warn({ err: errorMessage(error) }, "could not publish the batch; recovery publishes it");
      return { kind: "in-doubt", error: new BatchInDoubtError(batchId, error) };
    }
    if (published.kind === "unpublishable") {
      const rows = await this.#writer
        .hasBatchRows(
          target.table,
          ingestedAtMicros,
          files.map((file) => file.uri),
          { deadlineMs: 60_000 },
        )
        .catch((error: unknown) => error);
      if (rows instanceof Error || rows === undefined) {
        return { kind: "in-doubt", error: new BatchInDoubtError(batchId, rows) };
      }
      if (!rows) {
        if (rejectedOutcome !== undefined && rejectedOutcome.kind !== "unpublishable") {
          // Known limit: the quarantine cannot be taken back; the files' bad records land again with the
          // batch that writes them next.
          log.error(
            { table: staged.rejected?.table },
            "the batch's bad records were published but its rows cannot be: its quarantine rows (this _batch_id) are duplicates",
          );
        }
        const error = new BatchUnpublishableError(batchId, published.reason);
        const state = await abandonBatch(this.#db, {
          batchId,
          from: "PUBLISHING",
          state: "ABANDONED",
          errorMessage: error.message,
        }).catch((err: unknown) => err);
        if (state !== "ABANDONED") return { kind: "in-doubt", error: new BatchInDoubtError(batchId, state) };
        const outcomes = files.map((file) => failureOutcome(file, error, batchId, false));
        await this.#record(outcomes, log).catch(() => undefined);
        this.#announceFailures(files, outcomes);
        return { kind: "failed", error };
      }
    }
    if (this.#faults.crashAfterCommit) crash(log, "after-commit");

    const snapshotId = published.kind === "published" ? published.snapshotId : null;
    const outcomes: Outcome[] = files.map((file) => ({
      id: file.fileId,
      version: file.version,
      status: "SUCCESS",
      recordsIngested: staged.records.get(file.uri) ?? 0,
      ...outcomeCounts(staged.recordCounts?.get(file.uri)),
      bytesRead: file.bytes,
      batchId,
      ...(snapshotId === null ? {} : { snapshotId }),
    }));
    mark("publishMs");
    try {
      await this.#recordCommitted(batchId, outcomes, snapshotId);
    } catch (error) {
      log.warn({ err: errorMessage(error) }, "published, but not recorded yet; recovery records it");
      return { kind: "in-doubt", error: new BatchInDoubtError(batchId, error) };
    }
    mark("recordMs");
    log.info(
      {
        files: files.length,
        snapshotId,
        records: [...staged.records.values()].reduce((sum, n) => sum + n, 0),
        ...marks,
        stage: staged.timings,
      },
      "batch committed",
    );
    return { kind: "committed", snapshotId, records: staged.records };
  }

  /**
   * Settles a batch whose writer may be gone: an OPEN one is abandoned (its staged snapshot is never
   * published), a PUBLISHING one is published unless the table already holds its rows, a COMMITTED one has
   * its files recorded again. With `skipLive`, a batch its writer may still be working on (an OPEN batch
   * with a live lease, a PUBLISHING one within its publisher's time) is left alone.
   */
  async resolve(
    batchId: string,
    options: {
      skipLive: boolean;
      signal?: AbortSignal;
      deadlineMs?: number;
      /** The claim asking: "committed" only when the batch holds this very version of the file. */
      forFile?: { id: number; version: number };
    },
  ): Promise<BatchResolution> {
    const { resolution } = await this.settle(batchId, options);
    if (resolution !== "committed" || options.forFile === undefined) return resolution;
    const { id, version } = options.forFile;
    const batch = await readBatch(this.#db, batchId);
    // An earlier version's batch, published first: this version is still to be written.
    return batch?.members.some((member) => member.id === id && member.version === version)
      ? "committed"
      : "abandoned";
  }

  /**
   * {@link resolve} for the reconciler: also says whether this call settled the batch (`settledHere`), or
   * found it settled by someone else meanwhile (its writer, who announces it; only then may the caller
   * announce it as recovered).
   */
  async settle(
    batchId: string,
    options: { skipLive: boolean; signal?: AbortSignal; deadlineMs?: number },
  ): Promise<{ resolution: BatchResolution; settledHere: boolean }> {
    const elsewhere = (resolution: BatchResolution) => ({ resolution, settledHere: false });
    let batch = await readBatch(this.#db, batchId);
    if (!batch) return elsewhere("abandoned");
    const log = this.#logger.child({ batchId, table: batch.table });
    if (batch.state === "OPEN") {
      if (options.skipLive && batch.members.some((member) => member.liveLease)) return elsewhere("live");
      const state = await abandonBatch(this.#db, {
        batchId,
        from: "OPEN",
        state: "ABANDONED",
        errorMessage: "its writer was gone before deciding it; never published",
      });
      if (state === "ABANDONED") {
        log.info({ files: batch.members.length }, "batch abandoned");
        return { resolution: "abandoned", settledHere: true };
      }
      // Its writer decided first (and may have published and recorded it since): settled as below.
      batch = await readBatch(this.#db, batchId);
      if (!batch) return elsewhere("abandoned");
    }
    if (batch.state === "FAILED" || batch.state === "ABANDONED") return elsewhere("abandoned");
    if (batch.state === "PUBLISHING" && options.skipLive && batch.publishLive) return elsewhere("live");
    const settledHere = batch.state === "PUBLISHING";
    const execution: ExecutionOptions = {
      ...(options.signal ? { signal: options.signal } : {}),
      deadlineMs: options.deadlineMs ?? 120_000,
    };
    let snapshotId = batch.snapshotId;
    if (batch.state === "PUBLISHING") {
      const published = await this.#publishFromRecord(batch, execution, log);
      if (published === "abandoned") return { resolution: "abandoned", settledHere };
      snapshotId = published.published;
    }
    const outcomes: Outcome[] = batch.members.map((member) => ({
      id: member.id,
      version: member.version,
      status: "SUCCESS",
      recordsIngested: member.records ?? 0,
      ...(member.recordsParsed === null ? {} : { recordsParsed: member.recordsParsed }),
      ...(member.recordsRejected === null ? {} : { recordsRejected: member.recordsRejected }),
      ...(member.firstError === null ? {} : { firstError: member.firstError }),
      bytesRead: member.size,
      batchId,
      ...(snapshotId === null ? {} : { snapshotId }),
    }));
    await this.#recordCommitted(batchId, outcomes, snapshotId);
    log.info({ files: batch.members.length, snapshotId }, "batch resolved committed; files recorded from it");
    return { resolution: "committed", settledHere };
  }

  /**
   * Publishes a PUBLISHING batch from its record: `published` with the snapshot id (null when unknown), or
   * `abandoned` when it can no longer be published and its rows are not in the table.
   */
  async #publishFromRecord(
    batch: BatchRecord,
    execution: ExecutionOptions,
    log: Logger,
  ): Promise<{ published: string | null } | "abandoned"> {
    const files = batch.members.map((member) => member.path);
    const marker = batch.ingestedAtMicros;
    if (batch.stagedSnapshotId === null || marker === null) {
      throw new Error(`batch ${batch.id} is PUBLISHING without its staged snapshot or rows marker`);
    }
    // The bad records first, as their writer does: published once (Iceberg refuses a second publish).
    if (batch.rejectedStagedSnapshotId !== null) {
      const rejectedTable = rejectedTableOf(batch.table);
      const rejected = await this.#writer.publish(rejectedTable, batch.rejectedStagedSnapshotId, execution);
      if (
        rejected.kind === "unpublishable" &&
        !(await this.#writer.hasBatchRows(rejectedTable, marker, files, execution))
      ) {
        return this.#abandonUnpublishable(batch, rejected.reason, log);
      }
    }
    // While the staged snapshot exists, Iceberg refuses to publish it twice (it finds the earlier publish on
    // the lineage: maintenance that expires by age removes the staged snapshot no later than the publish).
    const published = await this.#writer.publish(batch.table, batch.stagedSnapshotId, execution);
    if (published.kind === "published") return { published: published.snapshotId };
    if (published.kind === "already-published") return { published: batch.snapshotId };
    // It can no longer be published. Was it, before (by a writer that died before recording it)? Asked of
    // the rows, not of snapshot history, which maintenance may have expired.
    if (await this.#writer.hasBatchRows(batch.table, marker, files, execution)) {
      return { published: batch.snapshotId };
    }
    return this.#abandonUnpublishable(batch, published.reason, log);
  }

  /** A decided batch that can no longer be published and whose rows are not in the table: written again. */
  async #abandonUnpublishable(
    batch: BatchRecord,
    reason: string,
    log: Logger,
  ): Promise<{ published: string | null } | "abandoned"> {
    const state = await abandonBatch(this.#db, {
      batchId: batch.id,
      from: "PUBLISHING",
      state: "ABANDONED",
      errorMessage: `could not be published (${reason}) and its rows are not in the table`,
    });
    if (state === "ABANDONED") {
      log.warn({ reason }, "decided batch could not be published; its files are written again");
      return "abandoned";
    }
    return { published: batch.snapshotId };
  }

  async #publishWithRetries(table: string, stagedSnapshotId: string, log: Logger): Promise<PublishOutcome> {
    const deadline = Date.now() + this.#publishLeaseMs / 2;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#writer.publish(table, stagedSnapshotId, { deadlineMs: 60_000 });
      } catch (error) {
        const delay = PUBLISH_RETRY_DELAYS_MS[Math.min(attempt, PUBLISH_RETRY_DELAYS_MS.length - 1)] ?? 1_000;
        if (!isRetryable(error) || Date.now() + delay > deadline) throw error;
        log.info({ err: errorMessage(error), attempt: attempt + 1 }, "publish failed; trying again");
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /** Records a published batch COMMITTED with its files SUCCESS, whoever holds them now. Retries briefly. */
  async #recordCommitted(batchId: string, outcomes: Outcome[], snapshotId: string | null): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await recordOutcomes(this.#db, {
          worker: null,
          outcomes,
          batch: { id: batchId, state: "COMMITTED", ...(snapshotId === null ? {} : { snapshotId }) },
        });
        const state = (await readBatch(this.#db, batchId))?.state;
        if (state !== "COMMITTED") {
          throw new LakeferryError(
            "BATCH_NOT_COMMITTED",
            `batch ${batchId} was published but Postgres has it ${state ?? "missing"}; recovery settles it`,
            { retryable: true },
          );
        }
        return;
      } catch (error) {
        if (!isRetryable(error) || attempt >= 3) throw error;
        await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
      }
    }
  }

  /**
   * Records a failed attempt for each file (PENDING to retry, or FAILED when permanent or on the job's last
   * attempt; an outage counts against no file) and returns the error the files fail with.
   */
  async #recordFailures(
    files: LifecycleFile[],
    error: unknown,
    batchId: string,
    log: Logger,
    counted = outageOf(error) === undefined,
  ): Promise<unknown> {
    const outcomes = files.map((file) => failureOutcome(file, error, batchId, counted));
    await this.#record(outcomes, log).catch((err: unknown) =>
      log.warn({ err: errorMessage(err) }, "could not record the failures; the leases will expire"),
    );
    this.#announceFailures(files, outcomes);
    files.forEach((file, index) => {
      const outcome = outcomes[index];
      const fields = {
        batchId,
        errorType: outcome?.errorType,
        error: outcome?.errorMessage,
        status: outcome?.status,
      };
      if (outcome?.status === "FAILED") file.log.warn(fields, "file failed");
      else file.log.info({ ...fields, counted }, "file will be retried");
    });
    return error;
  }

  /**
   * Records the files the batch refused before writing: those whose bad records are beyond their
   * ingestion's limit (SKIPPED or FAILED, with their counts and first bad record), and under
   * `failOnNewColumns` those with columns the table lacks (SKIPPED, the columns recorded for approval first:
   * a file is never skipped without its change on record). Not retried: the same records are bad, the same
   * columns new, the next time. The batch's other files are written again together, without them.
   */
  async #recordRefused(
    files: LifecycleFile[],
    error: RefusedFilesError,
    batchId: string,
    log: Logger,
    writeStartedMicros: bigint,
  ): Promise<BatchVerdict> {
    let refused = files.flatMap((file) => {
      const refusal = error.refused.get(file.uri);
      return refusal === undefined ? [] : [{ file, refusal }];
    });
    let recordable = true;
    const keysOf = (refusal: FileRefusal): string[] =>
      "columns" in refusal
        ? (refusal as SchemaChangeRefusal).columns.map((column) => `${column.name} ${column.type}`)
        : [];
    if (error instanceof SchemaChangeError) {
      const changes = refused.flatMap(({ file, refusal }) =>
        (refusal as SchemaChangeRefusal).columns.map((column) => ({
          ingestionId: file.target.ingestionId,
          column: column.name,
          type: column.type,
          fileUri: file.uri,
        })),
      );
      // The table was read after the write started (a few seconds' room for the clocks of this worker and
      // Postgres): an approval since then may have added the columns after the read.
      const tableReadAt = new Date(Number(writeStartedMicros / 1000n) - CLOCK_ROOM_MS);
      const approved = await recordSchemaChanges(this.#db, changes, tableReadAt).catch((err: unknown) => {
        log.warn({ err: errorMessage(err) }, "could not record the new columns; the leases will expire");
        recordable = false;
        return new Set<string>();
      });
      // A file whose new columns were all approved meanwhile does not wait: it goes again with the others.
      refused = refused.filter(({ refusal }) => !keysOf(refusal).every((key) => approved.has(key)));
    }
    const outcomes: Outcome[] = refused.map(({ file, refusal }) => ({
      id: file.fileId,
      version: file.version,
      status: refusal.status,
      errorType: error.code,
      errorMessage: refusal.message,
      recordsIngested: 0,
      ...("counts" in refusal ? outcomeCounts((refusal as RefusedFile).counts) : {}),
      batchId,
    }));
    if (recordable) {
      await this.#record(outcomes, log).catch((err: unknown) =>
        log.warn({ err: errorMessage(err) }, "could not record the refused files; the leases will expire"),
      );
      if (error instanceof SchemaChangeError) await this.#releaseApproved(refused, keysOf, log);
    }
    const settled = new Map<string, unknown>();
    refused.forEach(({ file, refusal }) => {
      const fileError = new LakeferryError(error.code, refusal.message, { retryable: false });
      settled.set(file.uri, fileError);
      file.log.warn(
        { batchId, status: refusal.status, error: refusal.message },
        "file refused before the write",
      );
      if (this.#events !== undefined && recordable) {
        announceFile(this.#events, file, refusal.status, 0, error.code);
      }
    });
    return { kind: "split", error, settled };
  }

  /**
   * Files just SKIPPED for new columns that an approval running at the same time approved after this
   * worker recorded the columns but before it recorded the files (its requeue missed them, still
   * PROCESSING): put back to PENDING, for the reconciler to queue. An approval after this check finds them
   * SKIPPED and queues them itself.
   */
  async #releaseApproved(
    refused: { file: LifecycleFile; refusal: FileRefusal }[],
    keysOf: (refusal: FileRefusal) => string[],
    log: Logger,
  ): Promise<void> {
    const first = refused[0];
    if (first === undefined) return;
    const ingestionId = first.file.target.ingestionId;
    try {
      const columns = refused.flatMap(({ refusal }) =>
        keysOf(refusal).map((key) => {
          const cut = key.indexOf(" ");
          return { column: key.slice(0, cut), type: key.slice(cut + 1) };
        }),
      );
      const approved = await approvedSchemaChanges(this.#db, ingestionId, columns);
      const ready = refused.filter(({ refusal }) => keysOf(refusal).every((key) => approved.has(key)));
      if (ready.length === 0) return;
      const reset = await resetFilesForRetry(this.#db, ingestionId, {
        fileIds: ready.map(({ file }) => file.fileId),
      });
      log.info({ files: reset.length }, "files skipped for columns approved meanwhile are PENDING again");
    } catch (err) {
      log.warn(
        { err: errorMessage(err) },
        "could not check the approval of new columns; lakeferry schema approve queues the files again",
      );
    }
  }

  /** Announces each failed file's outcome (`retry` when left PENDING). */
  #announceFailures(files: LifecycleFile[], outcomes: Outcome[]): void {
    const events = this.#events;
    if (events === undefined) return;
    files.forEach((file, index) => {
      const outcome = outcomes[index];
      if (outcome === undefined) return;
      announceFile(events, file, outcome.status === "FAILED" ? "FAILED" : "retry", 0, outcome.errorType);
    });
  }

  #announceSparkError(error: unknown): void {
    if (this.#events === undefined || !(error instanceof SparkConnectError)) return;
    this.#events.emit("spark:error", {
      errorClass: fileErrorType(error),
      outage: outageOf(error) !== undefined,
    });
  }

  /** Records this worker's outcomes for files it still holds. */
  async #record(outcomes: Outcome[], log: Logger): Promise<void> {
    const { applied } = await recordOutcomes(this.#db, { worker: this.#workerId, outcomes });
    if (applied.length < outcomes.length) {
      log.warn(
        { recorded: applied.length, outcomes: outcomes.length },
        "some outcomes not recorded: the lease was lost or the file changed meanwhile",
      );
    }
  }
}

/** Announces a file's settling: its claim-to-now duration, size and rows. */
export function announceFile(
  events: PipelineEvents,
  file: Pick<LifecycleFile, "ingestion" | "fileId" | "bytes" | "claimedAt">,
  status: SettledStatus,
  records: number,
  errorType?: string,
): void {
  events.emit("file:settled", {
    ingestion: file.ingestion,
    fileId: file.fileId,
    status,
    durationSeconds: Math.max(0, performance.now() - file.claimedAt) / 1000,
    bytes: file.bytes,
    records,
    ...(errorType === undefined ? {} : { errorType }),
  });
}

/** Announces a batch's verdict, and on a commit each of its files' success. */
function announceBatch(
  events: PipelineEvents,
  attempt: BatchAttempt<LifecycleFile>,
  verdict: BatchVerdict,
  started: number,
): void {
  const files = attempt.files;
  let records = 0;
  if (verdict.kind === "committed") {
    for (const file of files) {
      const rows = verdict.records.get(file.uri) ?? 0;
      records += rows;
      announceFile(events, file, "SUCCESS", rows);
    }
  }
  const outcome: BatchOutcome = verdict.kind;
  events.emit("batch:finished", {
    ingestion: files[0]?.ingestion ?? String(attempt.target.ingestionId),
    batchId: attempt.batchId,
    outcome,
    files: files.length,
    bytes: files.reduce((sum, file) => sum + file.bytes, 0),
    records,
    durationSeconds: (performance.now() - started) / 1000,
  });
}

/** PENDING (retried) or FAILED (permanent, or the last attempt of a counted failure). */
export function failureOutcome(
  file: Pick<LifecycleFile, "fileId" | "version" | "lastAttempt">,
  error: unknown,
  batchId: string | null,
  counted: boolean,
): Outcome {
  const final = !isRetryable(error) || (counted && file.lastAttempt);
  return {
    id: file.fileId,
    version: file.version,
    status: final ? "FAILED" : "PENDING",
    errorType: fileErrorType(error),
    errorMessage: errorMessage(error),
    counted,
    ...(batchId === null ? {} : { batchId }),
  };
}

/**
 * Whether an error Spark raised while reading a batch, naming one of its files, would be that file's alone
 * whatever it was read with: a record that does not parse under a schema the ingestion declares (JSON,
 * CSV). Not so for a schema inferred from a sample or taken from another file's footer (a Parquet column
 * typed int in one file and long in another fails the batch, yet each file reads alone), nor for a
 * transient error: those files are read again alone before they are blamed.
 */
function ownFailure(target: { format: string; schema?: string }, error: unknown): boolean {
  if (isRetryable(error) || target.schema === undefined) return false;
  if (target.format !== "json" && target.format !== "csv") return false;
  return errorClassesOf(error).some((errorClass) => errorClass.startsWith("MALFORMED_RECORD_IN_PARSING"));
}

/** Spark's error classes along the error and its cause chain (outermost first). */
function errorClassesOf(error: unknown): string[] {
  const classes: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current instanceof Error; depth++) {
    if ("errorClass" in current && typeof current.errorClass === "string") classes.push(current.errorClass);
    if ("causes" in current && Array.isArray(current.causes)) {
      for (const cause of current.causes as { errorClass?: unknown }[]) {
        if (typeof cause.errorClass === "string") classes.push(cause.errorClass);
      }
    }
    current = current.cause;
  }
  return classes;
}

/**
 * Spark's error class when there is one, the innermost of the cause chain (`FAILED_READ_FILE` wraps the
 * `MALFORMED_RECORD_IN_PARSING` that says what is wrong), else the error's code or name.
 */
export function fileErrorType(error: unknown): string {
  if (error instanceof LakeferryError && "errorClass" in error) {
    const causes =
      "causes" in error && Array.isArray(error.causes) ? (error.causes as { errorClass?: unknown }[]) : [];
    const innermost = causes.findLast((cause) => typeof cause.errorClass === "string")?.errorClass;
    if (typeof innermost === "string") return innermost;
    if (typeof error.errorClass === "string") return error.errorClass;
  }
  return errorType(error);
}

/** Fault injection: SIGKILLs this process (no cleanup, no signal handlers) at `point`. Tests only. */
export function crash(log: Logger, point: string): never {
  log.fatal({ point }, "fault injection: killing this process");
  log.flush?.();
  process.kill(process.pid, "SIGKILL");
  throw new Error("unreachable");
}

/** Files this large gain nothing from sharing a Spark task (and its data files) with other files. */
const LARGE_FILE_BYTES = 32 * 1024 * 1024;

/**
 * Whether keeping each file's rows in data files of their own costs nothing: every file is large enough to
 * keep a Spark task busy on its own. Isolated, a batch's rows per file come from its manifests instead of a
 * second read of what it wrote (about 1 s of 8 for 20 files of 50 MB).
 */
function isolatesForFree(files: readonly { bytes: number }[]): boolean {
  return files.length > 0 && files.every((file) => file.bytes >= LARGE_FILE_BYTES);
}

/** Each Spark call of a stage may take this long whatever the batch's size: the Spark client's default. */
const STAGE_DEADLINE_MS = 10 * 60_000;

/**
 * The slowest read a stage is given time for, in bytes per ms (1 MiB/s): bench:large-file read 1 GB of
 * JSON lines at 7.9 MB/s with the local Spark's defaults on 2 cores, so this leaves room for a busy or
 * smaller executor.
 */
const SLOWEST_READ_BYTES_PER_MS = (1024 * 1024) / 1000;

/**
 * How many bytes of JSON a byte of a gzip or bzip2 file is counted as: such a file is read by one task,
 * and its size understates the work (bench:large-file: 1 GB of JSON lines in 80 MB of gzip took 253 s,
 * 0.3 MB/s of the file).
 */
const COMPRESSED_TEXT_RATIO = 20;

/**
 * The deadline of each Spark call staging these files, in ms: the client's default (10 minutes) for a
 * batch of ordinary size, longer in proportion to its bytes beyond what that reads at the slowest rate
 * (about 600 MiB, or 30 MiB of gzip or bzip2), so a large file, written alone, is not cut off by a
 * deadline sized for small batches.
 */
export function stageDeadlineMs(files: readonly { bytes: number; uri: string }[]): number {
  const bytes = files.reduce(
    (sum, file) => sum + file.bytes * (/\.(gz|bz2)$/i.test(file.uri) ? COMPRESSED_TEXT_RATIO : 1),
    0,
  );
  return Math.max(STAGE_DEADLINE_MS, Math.ceil(bytes / SLOWEST_READ_BYTES_PER_MS));
}

/** A file's bad-record counts as its batch membership keeps them until the batch is recorded. */
function memberCounts(counts: FileRecordCounts | undefined): {
  parsed?: number;
  rejected?: number;
  firstError?: string;
} {
  if (counts === undefined) return {};
  return {
    parsed: counts.parsed,
    rejected: counts.rejected,
    ...(counts.firstError === undefined ? {} : { firstError: counts.firstError }),
  };
}

/** A file's bad-record counts as its outcome records them. */
function outcomeCounts(
  counts: FileRecordCounts | undefined,
): Pick<Outcome, "recordsParsed" | "recordsRejected" | "firstError"> {
  if (counts === undefined) return {};
  return {
    recordsParsed: counts.parsed,
    recordsRejected: counts.rejected,
    ...(counts.firstError === undefined ? {} : { firstError: counts.firstError }),
  };
}
