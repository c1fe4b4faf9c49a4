import { errorMessage, errorType, isRetryable, LakeferryError, type Logger } from "@lakeferry/core";
import {
  claimFiles,
  openBatch,
  recordOutcomes,
  renewLeases,
  type ClaimedFile,
  type Database,
  type Ingestion,
  type Outcome,
} from "@lakeferry/db";
import type { FileFormat } from "@lakeferry/iceberg";
import type { IngestJobContext } from "@lakeferry/queue";
import { ClaimCoalescer } from "./claim-coalescer.ts";
import {
  BatchInterruptedError,
  GroupCommitBatcher,
  type BatchAttempt,
  type BatchFile,
  type BatchLimits,
  type BatchSettlement,
  type BatchTarget,
  type BatchWriter,
} from "./group-commit-batcher.ts";
import { IngestionCache } from "./ingestion-cache.ts";
import { LeaseKeeper } from "./lease-keeper.ts";
import { resolveBatch } from "./batch-recovery.ts";
import { readSourceSettings } from "./source-settings.ts";
import { toSparkUri } from "@lakeferry/storage";

/**
 * Crash points for fault tests: the process kills itself with SIGKILL (no cleanup, no signal handlers) at
 * the named moment. Never set in production.
 */
export type FaultInjection = {
  /** After a file is claimed (Postgres says PROCESSING with our lease), before anything is written. */
  crashAfterClaim?: boolean;
  /** After the Iceberg commit of a batch, before Postgres records it: the batch stays OPEN. */
  crashAfterCommit?: boolean;
};

export interface FileIngestorOptions {
  db: Database;
  /** Writes batches (IcebergWriter). */
  writer: BatchWriter;
  /** This worker's name in leases, batches and attempts (unique per process). */
  workerId: string;
  /** How long a claim holds without renewal, in ms; renewed every third of it while the file is held. Default 60 000. */
  leaseMs?: number;
  /** Group-commit limits; see {@link BatchLimits}. */
  batch?: Partial<BatchLimits>;
  logger: Logger;
  /**
   * The path Spark reads a file by (see {@link FileIngestor.sparkPathOf}). Default: `toSparkUri` with the
   * ingestion's `spark.pathRules` (`s3://` → `s3a://`, `az://` → `abfss://`, others unchanged).
   */
  sparkPath?: (uri: string, ingestion: Ingestion) => string;
  faults?: FaultInjection;
}

/** This worker's lease on a file ran out and could not be renewed; another worker may hold the file now. */
export class LeaseLostError extends LakeferryError {
  constructor(fileId: number) {
    super("LEASE_LOST", `lost the lease on file ${fileId}; another worker may be ingesting it`, {
      retryable: true,
    });
  }
}

/** The ingestor is closing and takes no more files. */
export class IngestorClosedError extends LakeferryError {
  constructor() {
    super("INGESTOR_CLOSED", "the file ingestor is closing and takes no more files", { retryable: true });
  }
}

interface IngestFile extends BatchFile {
  claim: ClaimedFile;
  ingestion: Ingestion;
  job: IngestJobContext;
  log: Logger;
}

interface Held {
  /** Aborted when the lease is lost while the file still waits for its batch. */
  controller: AbortController;
  /** Once the outcome is being recorded, a lost lease is expected (recording clears it). */
  recording: boolean;
}

/**
 * Runs ingest jobs: claims the job's file version (claims of concurrent jobs coalesced into one round
 * trip), keeps its lease alive, first settles an earlier attempt whose batch may have committed (found by
 * batch id in the table's snapshots, never written twice), then hands the file to the group-commit batcher
 * and records every file's outcome of each batch in one transaction.
 *
 * Permanent failures are thrown with `retryable: false` (the queue stops retrying); transient ones are
 * recorded as PENDING (FAILED on the job's last attempt) and thrown so the queue backs off.
 */
export class FileIngestor {
  readonly #db: Database;
  readonly #writer: BatchWriter;
  readonly #workerId: string;
  readonly #leaseMs: number;
  readonly #logger: Logger;
  readonly #faults: FaultInjection;
  readonly #ingestions: IngestionCache;
  readonly #claims: ClaimCoalescer;
  readonly #leases: LeaseKeeper;
  readonly #batcher: GroupCommitBatcher<IngestFile>;
  readonly #held = new Map<number, Held>();
  /** Ingestions of the files held now, by URI, for {@link sparkPathOf}. */
  readonly #heldUris = new Map<string, Ingestion>();
  readonly #sparkPath: (uri: string, ingestion: Ingestion) => string;
  #closed = false;

  constructor(options: FileIngestorOptions) {
    this.#db = options.db;
    this.#writer = options.writer;
    this.#workerId = options.workerId;
    this.#leaseMs = options.leaseMs ?? 60_000;
    this.#logger = options.logger;
    this.#faults = options.faults ?? {};
    this.#sparkPath =
      options.sparkPath ??
      ((uri, ingestion) => toSparkUri(uri, readSourceSettings(ingestion.listing).sparkPathRules));
    this.#ingestions = new IngestionCache(options.db);
    this.#claims = new ClaimCoalescer((refs) =>
      claimFiles(this.#db, { refs, worker: this.#workerId, leaseMs: this.#leaseMs }),
    );
    this.#leases = new LeaseKeeper({
      leaseMs: this.#leaseMs,
      logger: options.logger,
      renew: (fileIds) => renewLeases(this.#db, { worker: this.#workerId, fileIds, leaseMs: this.#leaseMs }),
      onLost: (fileIds) => this.#leasesLost(fileIds),
    });
    this.#batcher = new GroupCommitBatcher<IngestFile>({
      writer: options.writer,
      ...(options.batch ? { limits: options.batch } : {}),
      open: (attempt) => this.#openBatch(attempt),
      settle: (attempt, settlement) => this.#settleBatch(attempt, settlement),
      ...(this.#faults.crashAfterCommit
        ? { afterCommit: (attempt: BatchAttempt<IngestFile>) => this.#crash("after-commit", attempt.batchId) }
        : {}),
    });
  }

  /** The batcher's limits in effect. */
  get batchLimits(): Readonly<BatchLimits> {
    return this.#batcher.limits;
  }

  /** Ingests the job's file version; resolves when its outcome is recorded (or there was nothing to do). */
  async process(job: IngestJobContext): Promise<void> {
    if (this.#closed) throw new IngestorClosedError();
    const { fileId, version, ingestionId } = job.data;
    const ingestion = await this.#ingestions.get(ingestionId);
    if (!ingestion) {
      this.#logger.warn(
        { ingestionId, fileId, attempt: job.attempt, batchId: null },
        "ingestion is gone; job dropped",
      );
      return;
    }
    const claim = await this.#claims.claim({ id: fileId, version });
    if (!claim) {
      // Settled already, superseded by a newer version, or leased by a live worker: nothing to do here.
      this.#logger.debug(
        { ingestion: ingestion.name, fileId, version, attempt: job.attempt, batchId: null },
        "file not claimable; job done",
      );
      return;
    }
    const log = this.#logger.child({
      ingestion: ingestion.name,
      fileId,
      version,
      attempt: claim.attempt,
      jobAttempt: job.attempt,
    });
    const held: Held = { controller: new AbortController(), recording: false };
    this.#held.set(fileId, held);
    this.#heldUris.set(claim.path, ingestion);
    this.#leases.hold(fileId);
    const signal = AbortSignal.any([job.signal, held.controller.signal]);
    try {
      if (this.#faults.crashAfterClaim) this.#crash("after-claim", null);
      if (claim.previousBatchId !== null && (await this.#recoverEarlierBatch(claim, job, log))) return;
      const file: IngestFile = {
        uri: claim.path,
        bytes: claim.size,
        target: targetOf(ingestion, claim),
        signal,
        claim,
        ingestion,
        job,
        log,
      };
      const commit = await this.#batcher.add(file);
      log.info(
        { batchId: commit.batchId, snapshotId: commit.result.snapshotId, records: commit.records },
        "file ingested",
      );
    } catch (err) {
      if (signal.aborted && err === signal.reason) {
        // Taken out before its batch was written: hand the file back unless someone else holds it now.
        if (!(err instanceof LeaseLostError)) await this.#handBack(claim, err, log);
        log.info({ batchId: null, reason: errorMessage(err) }, "file handed back before writing");
      } else if (err instanceof BatchInterruptedError) {
        log.warn({ batchId: err.batchId }, "write interrupted; the batch stays OPEN until it is resolved");
      }
      throw err;
    } finally {
      this.#held.delete(fileId);
      this.#heldUris.delete(claim.path);
      this.#leases.release(fileId);
    }
  }

  /**
   * The path Spark reads a held file by: give it to the writer (`IcebergWriter`'s `sparkPath`) so each
   * ingestion's path rules apply while `_source_file` keeps the URI as listed.
   */
  sparkPathOf(uri: string): string {
    const ingestion = this.#heldUris.get(uri);
    return ingestion ? this.#sparkPath(uri, ingestion) : toSparkUri(uri);
  }

  /**
   * Whether a held file's rows must sit in data files of their own: only ingestions whose modified-file
   * policy is `replace` need it (Iceberg can replace a file's rows only by dropping whole data files), and
   * isolation costs a Spark task and a data file per source file.
   */
  needsIsolatedFiles(uri: string): boolean {
    return this.#heldUris.get(uri)?.modifiedPolicy === "replace";
  }

  /** Writes the batches still gathering now instead of waiting for company (used when shutting down). */
  flush(): void {
    this.#batcher.flush();
  }

  /** Takes no more files, writes what it holds, waits for running writes and stops renewing leases. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#batcher.close();
    await this.#claims.idle();
    await this.#leases.close();
  }

  /**
   * An earlier attempt of this version went out in a batch that may have committed (its worker died between
   * the Iceberg commit and recording it). Returns true when that batch did commit and the file is now
   * recorded SUCCESS from it, so nothing is written again.
   */
  async #recoverEarlierBatch(claim: ClaimedFile, job: IngestJobContext, log: Logger): Promise<boolean> {
    const batchId = claim.previousBatchId as string;
    const held = this.#held.get(claim.id);
    let resolution;
    try {
      // Recording marks every member of that batch (this file included) SUCCESS when it committed.
      if (held) held.recording = true;
      ({ resolution } = await resolveBatch(this.#db, this.#writer, batchId, {
        skipLive: false,
        logger: log,
        signal: job.signal,
      }));
    } catch (err) {
      await this.#recordFailure(claim, job, err, log, batchId);
      throw err;
    } finally {
      if (held) held.recording = false;
    }
    if (resolution === "committed") {
      log.info({ batchId }, "file recovered from its committed batch; nothing written again");
      return true;
    }
    log.info({ batchId }, "earlier batch never committed; writing the file again");
    return false;
  }

  async #openBatch(attempt: BatchAttempt<IngestFile>): Promise<void> {
    await openBatch(this.#db, {
      batchId: attempt.batchId,
      ingestionId: attempt.target.ingestionId,
      table: attempt.target.table,
      worker: this.#workerId,
      files: attempt.files.map((file) => ({ id: file.claim.id, version: file.claim.version })),
    });
    this.#logger.debug(
      {
        ingestion: attempt.files[0]?.ingestion.name,
        batchId: attempt.batchId,
        fileIds: attempt.files.map((file) => file.claim.id),
        mode: attempt.target.mode,
      },
      "batch opened",
    );
  }

  async #settleBatch(attempt: BatchAttempt<IngestFile>, settlement: BatchSettlement): Promise<void> {
    const { batchId, files } = attempt;
    for (const file of files) {
      const held = this.#held.get(file.claim.id);
      if (held) held.recording = true;
    }
    if (settlement.kind === "committed") {
      const { result } = settlement;
      const outcomes: Outcome[] = files.map((file) => ({
        id: file.claim.id,
        version: file.claim.version,
        status: "SUCCESS",
        recordsIngested: result.records.get(file.uri) ?? 0,
        bytesRead: file.claim.size,
        snapshotId: result.snapshotId,
        batchId,
      }));
      const { applied } = await recordOutcomes(this.#db, {
        worker: this.#workerId,
        outcomes,
        batch: { id: batchId, state: "COMMITTED", snapshotId: result.snapshotId },
      });
      this.#warnUnapplied(files, applied, batchId);
      this.#logger.info(
        {
          ingestion: files[0]?.ingestion.name,
          batchId,
          files: files.length,
          snapshotId: result.snapshotId,
          records: [...result.records.values()].reduce((sum, n) => sum + n, 0),
        },
        "batch committed",
      );
      return;
    }

    const { error, split } = settlement;
    if (split) {
      await recordOutcomes(this.#db, {
        worker: this.#workerId,
        outcomes: [],
        batch: { id: batchId, state: "FAILED", errorMessage: errorMessage(error) },
      });
      this.#logger.info(
        {
          ingestion: files[0]?.ingestion.name,
          batchId,
          files: files.length,
          errorType: fileErrorType(error),
        },
        "batch failed permanently; splitting it to find the bad files",
      );
      return;
    }
    // A transient failure may have struck after Iceberg committed (Spark stopping while the counts were read,
    // a stream dropped after the commit): the batch is resolved FAILED only once the table says it never
    // committed. Otherwise it stays OPEN, and the files' next claim (or the reconciler) resolves it from the
    // table's snapshots before anything is written again.
    let resolved: "FAILED" | undefined = "FAILED";
    if (isRetryable(error)) {
      const found = await this.#writer
        .findCommittedBatch(attempt.target.table, batchId, { deadlineMs: 30_000 })
        .catch((): null => null);
      if (found) return this.#settleBatch(attempt, { kind: "committed", result: found });
      if (found === null) resolved = undefined;
    }
    const outcomes = files.map((file) => failureOutcome(file.claim, file.job, error, batchId));
    const { applied } = await recordOutcomes(this.#db, {
      worker: this.#workerId,
      outcomes,
      ...(resolved ? { batch: { id: batchId, state: resolved, errorMessage: errorMessage(error) } } : {}),
    });
    this.#warnUnapplied(files, applied, batchId);
    files.forEach((file, index) => {
      const status = outcomes[index]?.status;
      const fields = { batchId, errorType: fileErrorType(error), error: errorMessage(error), status };
      if (status === "FAILED") file.log.warn(fields, "file failed");
      else file.log.info(fields, "file will be retried");
    });
  }

  async #recordFailure(
    claim: ClaimedFile,
    job: IngestJobContext,
    error: unknown,
    log: Logger,
    batchId: string | null,
  ): Promise<void> {
    const outcome = failureOutcome(claim, job, error, batchId);
    await recordOutcomes(this.#db, { worker: this.#workerId, outcomes: [outcome] }).catch((err: unknown) =>
      log.warn({ batchId, err: errorMessage(err) }, "could not record the failure; the lease will expire"),
    );
    log.warn(
      { batchId, status: outcome.status, errorType: outcome.errorType, error: outcome.errorMessage },
      "attempt failed",
    );
  }

  /** Gives a claimed file back (PENDING, lease cleared) so another worker can take it at once. */
  async #handBack(claim: ClaimedFile, reason: unknown, log: Logger): Promise<void> {
    try {
      await recordOutcomes(this.#db, {
        worker: this.#workerId,
        outcomes: [
          {
            id: claim.id,
            version: claim.version,
            status: "PENDING",
            errorType: errorType(reason),
            errorMessage: errorMessage(reason),
          },
        ],
      });
    } catch (err) {
      log.warn(
        { batchId: null, err: errorMessage(err) },
        "could not hand the file back; its lease will expire",
      );
    }
  }

  #leasesLost(fileIds: number[]): void {
    for (const fileId of fileIds) {
      const held = this.#held.get(fileId);
      if (!held || held.recording) continue;
      this.#logger.warn(
        { fileId, batchId: null },
        "lease lost; dropping the file if it is not being written yet",
      );
      held.controller.abort(new LeaseLostError(fileId));
    }
  }

  #warnUnapplied(files: IngestFile[], applied: number[], batchId: string): void {
    if (applied.length === files.length) return;
    const done = new Set(applied);
    for (const file of files) {
      if (!done.has(file.claim.id)) {
        file.log.warn({ batchId }, "outcome not recorded: the lease was lost or the file changed meanwhile");
      }
    }
  }

  #crash(point: string, batchId: string | null): void {
    this.#logger.fatal({ point, batchId }, "fault injection: killing this process");
    this.#logger.flush?.();
    process.kill(process.pid, "SIGKILL");
  }
}

/** Where and how a claimed file version is written. */
function targetOf(ingestion: Ingestion, claim: ClaimedFile): BatchTarget {
  return {
    ingestionId: ingestion.id,
    table: ingestion.targetTable,
    format: ingestion.format as FileFormat,
    ...(ingestion.schemaDdl === null ? {} : { schema: ingestion.schemaDdl }),
    options: ingestion.readerOptions,
    // A later version of a file under `replace` swaps the rows of the earlier one in one commit.
    mode: ingestion.modifiedPolicy === "replace" && claim.version > 1 ? "replace" : "append",
  };
}

/** FAILED for a permanent error or on the job's last attempt, else PENDING (retried after backoff). */
function failureOutcome(
  claim: ClaimedFile,
  job: IngestJobContext,
  error: unknown,
  batchId: string | null,
): Outcome {
  const final = !isRetryable(error) || job.attempt >= job.maxAttempts;
  return {
    id: claim.id,
    version: claim.version,
    status: final ? "FAILED" : "PENDING",
    errorType: fileErrorType(error),
    errorMessage: errorMessage(error),
    ...(batchId === null ? {} : { batchId }),
  };
}

/**
 * Spark's error class when there is one, the innermost of the cause chain (`FAILED_READ_FILE` wraps the
 * `MALFORMED_RECORD_IN_PARSING` that says what is wrong), else the error's code or name.
 */
function fileErrorType(error: unknown): string {
  if (error instanceof LakeferryError && "errorClass" in error) {
    const causes =
      "causes" in error && Array.isArray(error.causes) ? (error.causes as { errorClass?: unknown }[]) : [];
    const innermost = causes.findLast((cause) => typeof cause.errorClass === "string")?.errorClass;
    if (typeof innermost === "string") return innermost;
    if (typeof error.errorClass === "string") return error.errorClass;
  }
  return errorType(error);
}
