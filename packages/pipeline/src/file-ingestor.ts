import { errorMessage, LakeferryError, outageOf, type Logger } from "@lakeferry/core";
import {
  claimFiles,
  FILE_TOO_LARGE,
  fileIdentities,
  firstAttemptFiles,
  recordOutcomes,
  renewLeases,
  UNSUPPORTED_COMPRESSION,
  type ClaimedFile,
  type Database,
  type FileStatus,
  type Ingestion,
  type Outcome,
} from "@lakeferry/db";
import {
  DISTRIBUTION_CODECS,
  needsZstdCodec,
  unreadableCompression,
  type BadRecordsPolicy,
  type FileFormat,
  type SparkCodecs,
} from "@lakeferry/iceberg";
import type { IngestJobContext } from "@lakeferry/queue";
import { toSparkUri } from "@lakeferry/storage";
import {
  announceFile,
  BatchFencedError,
  BatchLifecycle,
  crash,
  failureOutcome,
  type BatchWriter,
  type LifecycleFaults,
  type LifecycleFile,
} from "./batch-lifecycle.ts";
import { TableClaimGate, type ClaimPass } from "./table-claim-gate.ts";
import { TableWriteLeases } from "./table-write-lease.ts";
import { ClaimCoalescer, Coalescer } from "./claim-coalescer.ts";
import {
  DEFAULT_BATCH_LIMITS,
  GroupCommitBatcher,
  targetKey,
  type AdoptedFile,
  type BatchAttempt,
  type FileCommit,
  type BatchLimits,
  type BatchTarget,
} from "./group-commit-batcher.ts";
import { IngestionCache } from "./ingestion-cache.ts";
import { LeaseKeeper } from "./lease-keeper.ts";
import type { PipelineEvents } from "./pipeline-events.ts";
import { readSourceSettings } from "./source-settings.ts";
import { badRecordsOf } from "./bad-record-settings.ts";
import { localFileRefusal, type AccessPolicy } from "./access-policy.ts";

/**
 * Crash points for fault tests: the process kills itself with SIGKILL (no cleanup, no signal handlers) at
 * the named moment. Never set in production.
 */
export interface FaultInjection extends LifecycleFaults {
  /** After a file is claimed (Postgres says PROCESSING with our lease), before anything is written. */
  crashAfterClaim?: boolean;
}

export interface FileIngestorOptions {
  db: Database;
  /** Stages and publishes batches (an `IcebergWriterPool`). */
  writer: BatchWriter;
  /** This worker's name in leases, batches and attempts (unique per process). */
  workerId: string;
  /**
   * How long a claim holds without renewal, in ms; renewed every third of it while the file is held. Also
   * how long this worker alone publishes a batch it decided. Default 60 000.
   */
  leaseMs?: number;
  /** Group-commit limits; see {@link BatchLimits}. */
  batch?: Partial<BatchLimits>;
  /**
   * Jobs this worker runs at once (its queue concurrency). Once that many files wait in batches no more can
   * arrive, so the batches stop waiting for company. Default: unknown (batches wait up to maxWaitMs).
   */
  concurrency?: number;
  /**
   * One write in flight per table across the fleet (a write lease per table in Postgres, waited for in
   * turn); see {@link TableWriteLeases}. Default true.
   */
  oneWriterPerTable?: boolean;
  /**
   * When this worker is about to write a table, it also claims that ingestion's files still waiting for
   * their first job (up to the batch limits) and writes them in the same batch: the backlog goes out in
   * few, large batches however many workers hold its jobs, and those jobs then find their files done.
   * Default true. With it (and one writer per table), a worker does not claim files of a table that another
   * worker is writing: that worker takes them on (see {@link TableClaimGate}).
   */
  adoptWaitingFiles?: boolean;
  /** How long a job waits for another worker's write of its table before claiming anyway, in ms. Default 10 000. */
  claimDeferMaxMs?: number;
  logger: Logger;
  /**
   * Which optional codecs the Spark server reads (`.zst` text needs lakeferry's zstd codec there); asked
   * only when a claimed file needs one. Default: none, so `.zst` JSON, CSV and text are refused
   * (UNSUPPORTED_COMPRESSION).
   */
  codecs?: SparkCodecs;
  /** Where `file:settled`, `batch:finished` and `spark:error` are announced. Default: nowhere. */
  events?: PipelineEvents;
  faults?: FaultInjection;
  /**
   * The access policy of this worker's environment (see {@link accessPolicyFrom}): a local file is read only
   * if its source lies in LAKEFERRY_LOCAL_ROOTS and, after symbolic links, the file lies in its source
   * (a link swapped in after discovery). Such a file FAILS as `SOURCE_ACCESS_REFUSED`. Default: no check.
   */
  accessPolicy?: AccessPolicy;
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

/**
 * A job that Postgres does not back: it names a file that does not exist, or says the file belongs to
 * another ingestion than it does. Nothing is written. Not retryable.
 */
export class JobMismatchError extends LakeferryError {
  constructor(message: string) {
    super("JOB_MISMATCH", message, { retryable: false });
  }
}

/**
 * Files larger than this, in bytes, are written in batches of their own when their ingestion does not say
 * (`largeFileBytes`): a quarter of a full batch (1 GiB), and eight times the size from which a file keeps a
 * Spark task busy alone (see `isolatesForFree`), so ordinary files still share their batches.
 */
export const DEFAULT_LARGE_FILE_BYTES = 256 * 1024 * 1024;

/** A claimed file refused before anything is written: FAILED for good (the queue stops retrying it). */
export class FileRefusedError extends LakeferryError {
  constructor(errorType: string, message: string) {
    super(errorType, message, { retryable: false });
  }
}

type FileIdentity = { ingestionId: number; version: number; status: FileStatus };

interface IngestFile extends LifecycleFile {
  claim: ClaimedFile;
}

interface Held {
  /** Aborted when the lease is lost while the file still waits for its batch. */
  controller: AbortController;
  /** Once the batch is being written, a lost lease is for the fence to notice, not for us. */
  writing: boolean;
}

/**
 * Runs ingest jobs. A job is a hint: it names a file version, and everything else comes from the file's
 * Postgres row. Claims the version (claims of concurrent jobs coalesced into one round trip), keeps its
 * lease alive, first settles an earlier attempt's batch (see {@link BatchLifecycle.resolve}), then hands
 * the file to the group-commit batcher, whose batches the {@link BatchLifecycle} writes through the fence.
 *
 * Permanent failures are thrown with `retryable: false` (the queue stops retrying); transient ones are
 * recorded as PENDING (FAILED when the file's attempts are used up) and thrown so the queue backs off; an
 * outage (Spark, Postgres, Redis, storage) is thrown with its `outage` so the queue pauses instead of
 * spending the job's attempt.
 */
export class FileIngestor {
  readonly #db: Database;
  readonly #workerId: string;
  readonly #logger: Logger;
  readonly #faults: FaultInjection;
  readonly #accessPolicy: AccessPolicy | undefined;
  readonly #events: PipelineEvents | undefined;
  readonly #codecs: SparkCodecs;
  readonly #ingestions: IngestionCache;
  readonly #claims: ClaimCoalescer;
  /** Why a job could not claim its file, for many jobs in one query (a backlog's jobs after their files
   * were taken on by a batch all ask). */
  readonly #identities: Coalescer<number, FileIdentity | undefined>;
  readonly #leases: LeaseKeeper;
  readonly #lifecycle: BatchLifecycle;
  readonly #batcher: GroupCommitBatcher<IngestFile>;
  readonly #held = new Map<number, Held>();
  readonly #leaseMs: number;
  /** Jobs claim only in the process that writes their table (with adoption and table leases). */
  readonly #gate: TableClaimGate | undefined;
  /** Aborted when the ingestor closes: the signal of files taken on without a job (see #adoptWaiting). */
  readonly #shutdown = new AbortController();
  /** What adopted files' fates are still being followed (awaited by close). */
  readonly #following = new Set<Promise<void>>();
  /** Set by flush (the worker is draining) and close: batches take on no more files. */
  #draining = false;
  #closed = false;

  constructor(options: FileIngestorOptions) {
    const leaseMs = options.leaseMs ?? 60_000;
    this.#db = options.db;
    this.#leaseMs = leaseMs;
    this.#workerId = options.workerId;
    this.#logger = options.logger;
    this.#faults = options.faults ?? {};
    this.#accessPolicy = options.accessPolicy;
    this.#events = options.events;
    this.#codecs = options.codecs ?? DISTRIBUTION_CODECS;
    this.#ingestions = new IngestionCache(options.db);
    this.#identities = new Coalescer(async (ids) => {
      const found = await fileIdentities(this.#db, ids);
      return ids.map((id) => found.get(id));
    });
    this.#claims = new ClaimCoalescer((refs) =>
      claimFiles(this.#db, { refs, worker: this.#workerId, leaseMs }),
    );
    this.#leases = new LeaseKeeper({
      leaseMs,
      logger: options.logger,
      renew: (fileIds) => renewLeases(this.#db, { worker: this.#workerId, fileIds, leaseMs }),
      onLost: (fileIds) => this.#leasesLost(fileIds),
    });
    const tableLeases =
      options.oneWriterPerTable === false
        ? undefined
        : new TableWriteLeases({
            db: options.db,
            holder: options.workerId,
            logger: options.logger,
            // A write that outlasts slowWriteMs lets the next one start, in this process and in the fleet.
            ttlMs: options.batch?.slowWriteMs ?? DEFAULT_BATCH_LIMITS.slowWriteMs,
          });
    this.#gate =
      tableLeases === undefined || options.adoptWaitingFiles === false
        ? undefined
        : new TableClaimGate({
            leases: tableLeases,
            logger: options.logger,
            ...(options.claimDeferMaxMs === undefined ? {} : { deferMaxMs: options.claimDeferMaxMs }),
          });
    this.#lifecycle = new BatchLifecycle({
      db: options.db,
      writer: options.writer,
      workerId: options.workerId,
      logger: options.logger,
      publishLeaseMs: leaseMs,
      ...(tableLeases === undefined ? {} : { tableLeases }),
      ...(options.events ? { events: options.events } : {}),
      ...(options.faults ? { faults: options.faults } : {}),
    });
    this.#batcher = new GroupCommitBatcher<IngestFile>({
      ...(options.adoptWaitingFiles === false
        ? {}
        : { adopt: (attempt, room) => this.#adoptWaiting(attempt, room) }),
      ...(options.batch ? { limits: options.batch } : {}),
      ...(options.concurrency === undefined ? {} : { capacity: options.concurrency }),
      write: (attempt, signal) => {
        for (const file of attempt.files) {
          const held = this.#held.get(file.fileId);
          if (held) held.writing = true;
        }
        return this.#lifecycle.write(attempt, signal);
      },
    });
  }

  /** The batcher's limits in effect. */
  get batchLimits(): Readonly<BatchLimits> {
    return this.#batcher.limits;
  }

  /** The lifecycle of this ingestor's batches (the reconciler resolves batches through the same one). */
  get lifecycle(): BatchLifecycle {
    return this.#lifecycle;
  }

  /** Ingests the job's file version; resolves when its outcome is recorded (or there was nothing to do). */
  async process(job: IngestJobContext): Promise<void> {
    if (this.#closed) throw new IngestorClosedError();
    const pass = await this.#enterGate(job);
    try {
      await this.#process(job);
    } finally {
      pass?.leave();
    }
  }

  /** Waits while another worker writes the job's table (see TableClaimGate); none without a gate. */
  async #enterGate(job: IngestJobContext): Promise<ClaimPass | undefined> {
    if (this.#gate === undefined) return undefined;
    // The job's ingestion is a hint (the claim checks it); one that does not exist passes straight on.
    const ingestion = await this.#ingestions.get(job.data.ingestionId);
    if (!ingestion) return undefined;
    return this.#gate.enter(ingestion.targetTable, job.signal);
  }

  /** Why this worker's access policy forbids reading a claimed local file, as its FAILED outcome. */
  /**
   * Why a claimed file is not written, if it is not. A refusal by the ingestion's settings is settled for
   * good, so it is decided on settings read now rather than on the few seconds old cached ones: a limit
   * raised right before `lakeferry retry` counts.
   */
  async #refusal(
    ingestion: Ingestion,
    claim: ClaimedFile,
    sparkReadsZstd: boolean,
  ): Promise<Outcome | undefined> {
    if (refusalOf(ingestion, claim, sparkReadsZstd) !== undefined) {
      const current = (await this.#ingestions.fresh(ingestion.id)) ?? ingestion;
      const refusal = refusalOf(current, claim, sparkReadsZstd);
      if (refusal !== undefined) return refusal;
    }
    return this.#accessRefusal(ingestion, claim);
  }

  async #accessRefusal(ingestion: Ingestion, claim: ClaimedFile): Promise<Outcome | undefined> {
    if (this.#accessPolicy === undefined) return undefined;
    const refusal = await localFileRefusal(this.#accessPolicy, ingestion.sourceUri, claim.path);
    if (refusal === undefined) return undefined;
    return {
      id: claim.id,
      version: claim.version,
      status: "FAILED",
      errorType: "SOURCE_ACCESS_REFUSED",
      errorMessage: refusal,
    };
  }

  async #process(job: IngestJobContext): Promise<void> {
    const { fileId, version, ingestionId } = job.data;
    const claim = await this.#claims.claim({ id: fileId, version, ingestionId });
    const claimedAt = performance.now();
    if (!claim) {
      await this.#explainUnclaimable(job);
      return;
    }
    const ingestion = await this.#ingestions.get(claim.ingestionId);
    const log = this.#logger.child({
      ingestion: ingestion?.name ?? claim.ingestionId,
      fileId,
      version,
      attempt: claim.attempt,
      jobAttempt: job.attempt,
    });
    if (!ingestion) {
      log.warn({ batchId: null }, "ingestion is gone; job dropped");
      return;
    }
    const held: Held = { controller: new AbortController(), writing: false };
    this.#held.set(fileId, held);
    this.#leases.hold(fileId);
    const signal = AbortSignal.any([job.signal, held.controller.signal]);
    const file: IngestFile = {
      uri: claim.path,
      bytes: claim.size,
      target: targetOf(ingestion, claim),
      alone: claim.size > largeFileBytesOf(ingestion),
      signal,
      claim,
      fileId,
      version,
      readPath: toSparkUri(claim.path, readSourceSettings(ingestion.listing).sparkPathRules),
      lastAttempt: job.attempt >= job.maxAttempts,
      log,
      ingestion: ingestion.name,
      claimedAt,
    };
    try {
      if (this.#faults.crashAfterClaim) crash(log.child({ batchId: null }), "after-claim");
      if (claim.previousBatchId !== null && (await this.#settleEarlierBatch(file, job))) return;
      const sparkReadsZstd = await this.#sparkReadsZstd(ingestion, [claim], log.child({ batchId: null }));
      const refusal = await this.#refusal(ingestion, claim, sparkReadsZstd);
      if (refusal !== undefined) {
        await this.#refuse(file, refusal);
        if (refusal.status === "FAILED") {
          throw new FileRefusedError(refusal.errorType ?? "", refusal.errorMessage ?? "");
        }
        return;
      }
      const commit = await this.#batcher.add(file);
      log.info(
        { batchId: commit.batchId, snapshotId: commit.snapshotId, records: commit.records },
        "file ingested",
      );
    } catch (err) {
      if (err instanceof LeaseLostError) {
        // Someone else holds the file now (a takeover, or the reconciler): it is theirs to finish.
        log.info({ batchId: null }, "lease lost before writing; the file is someone else's now");
        return;
      }
      if (err instanceof BatchFencedError) {
        // The batch was given up on: hand back what is still ours; the reconciler enqueues it again.
        await this.#handBack(file, err);
        log.info({ batchId: null }, "batch fenced off; file handed back");
        return;
      }
      if (signal.aborted && err === signal.reason) {
        // Taken out before its batch was written: hand the file back.
        await this.#handBack(file, err);
        log.info({ batchId: null, reason: errorMessage(err) }, "file handed back before writing");
      }
      throw err;
    } finally {
      this.#held.delete(fileId);
      this.#leases.release(fileId);
    }
  }

  /**
   * Whether Spark reads zstd, asked of the server only when one of the claimed files is `.zst` text. A
   * server that cannot be asked counts as reading it: the write then meets the same outage and is retried
   * as one, rather than the files failing for good.
   */
  async #sparkReadsZstd(ingestion: Ingestion, claims: readonly ClaimedFile[], log: Logger): Promise<boolean> {
    if (!claims.some((claim) => needsZstdCodec(ingestion.format as FileFormat, claim.path))) return false;
    try {
      return await this.#codecs.readsZstd();
    } catch (error) {
      log.warn(
        { err: errorMessage(error) },
        "could not ask Spark whether it reads .zst; writing the file as if it did",
      );
      return true;
    }
  }

  /** Records the outcome of a file refused before writing (see {@link refusalOf}), and announces it. */
  async #refuse(file: IngestFile, refusal: Outcome): Promise<void> {
    await recordOutcomes(this.#db, { worker: this.#workerId, outcomes: [refusal] });
    const status = refusal.status === "SKIPPED" ? "SKIPPED" : "FAILED";
    file.log.warn(
      { batchId: null, status, bytes: file.bytes, errorType: refusal.errorType, error: refusal.errorMessage },
      "file refused before writing",
    );
    if (this.#events) announceFile(this.#events, file, status, 0, refusal.errorType);
  }

  /** Writes the batches still gathering now instead of waiting for company (used when shutting down). */
  flush(): void {
    this.#draining = true;
    this.#batcher.flush();
  }

  /** Takes no more files, writes what it holds, waits for running writes and stops renewing leases. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#draining = true;
    // Files taken on without a job have no job signal: they give up on their write now (handed back).
    this.#shutdown.abort(new IngestorClosedError());
    await this.#batcher.close();
    await Promise.allSettled([...this.#following]);
    await this.#claims.idle();
    await this.#identities.idle();
    await this.#leases.close();
  }

  /**
   * A job that could not claim its file: fine when the file is settled, leased elsewhere or at another
   * version (a duplicate or late job); a clear error when Postgres does not back the job at all.
   */
  async #explainUnclaimable(job: IngestJobContext): Promise<void> {
    const { fileId, version, ingestionId } = job.data;
    const identity = await this.#identities.ask(fileId);
    if (!identity) {
      throw new JobMismatchError(
        `job ${job.jobId} names file ${fileId}, which does not exist; nothing written`,
      );
    }
    if (identity.ingestionId !== ingestionId) {
      throw new JobMismatchError(
        `job ${job.jobId} says file ${fileId} belongs to ingestion ${ingestionId}, but it belongs to ` +
          `ingestion ${identity.ingestionId}; nothing written`,
      );
    }
    this.#logger.debug(
      { ingestionId, fileId, version, status: identity.status, attempt: job.attempt, batchId: null },
      "file not claimable; job done",
    );
  }

  /**
   * An earlier attempt of this version went out in a batch that may become (or be) visible: settle it first.
   * Returns true when that batch committed and the file is recorded SUCCESS from it (nothing is written
   * again); false when it was abandoned and the file is to be written now.
   */
  async #settleEarlierBatch(file: IngestFile, job: IngestJobContext): Promise<boolean> {
    const batchId = file.claim.previousBatchId as string;
    const held = this.#held.get(file.fileId);
    if (held) held.writing = true;
    try {
      const resolution = await this.#lifecycle.resolve(batchId, {
        skipLive: false,
        signal: job.signal,
        forFile: { id: file.fileId, version: file.version },
      });
      if (resolution === "committed") {
        file.log.info({ batchId }, "file recovered from its committed batch; nothing written again");
        // Its rows and bytes were counted when that batch committed.
        if (this.#events) announceFile(this.#events, { ...file, bytes: 0 }, "SUCCESS", 0);
        return true;
      }
      file.log.info({ batchId }, "earlier batch was never published; writing the file again");
      return false;
    } catch (err) {
      const outcome = failureOutcome(file, err, batchId, outageOf(err) === undefined);
      await recordOutcomes(this.#db, { worker: this.#workerId, outcomes: [outcome] }).catch(
        (error: unknown) =>
          file.log.warn(
            { batchId, err: errorMessage(error) },
            "could not record the failure; the lease will expire",
          ),
      );
      file.log.warn(
        { batchId, status: outcome.status, error: outcome.errorMessage },
        "could not settle the earlier batch",
      );
      if (this.#events) {
        announceFile(
          this.#events,
          file,
          outcome.status === "FAILED" ? "FAILED" : "retry",
          0,
          outcome.errorType,
        );
      }
      throw err;
    } finally {
      if (held) held.writing = false;
    }
  }

  /**
   * Claims files of the batch's ingestion that wait for their first job, as many as `room` allows, to be
   * written in the batch as members of it (split, retried and recorded with it). Their jobs, when they
   * come, find the files taken or done; a file handed back or left PENDING by a failure is enqueued again
   * by the reconciler.
   */
  async #adoptWaiting(
    attempt: BatchAttempt<IngestFile>,
    room: { files: number; bytes: number },
  ): Promise<AdoptedFile<IngestFile>[]> {
    // A replace batch swaps a file's rows in an overwrite that must stay small; appends take on the rest.
    if (this.#draining || attempt.target.mode !== "append") return [];
    const ingestion = await this.#ingestions.get(attempt.target.ingestionId);
    if (!ingestion) return [];
    const waiting = await firstAttemptFiles(this.#db, {
      ingestionId: ingestion.id,
      limit: room.files,
      maxBytes: room.bytes,
      // Under `replace`, a later version is written as an overwrite of its own: only first versions join.
      firstVersionOnly: ingestion.modifiedPolicy === "replace",
      // Large files go in batches of their own (and files above maxFileBytes are skipped): only by their jobs.
      maxFileBytes: Math.min(largeFileBytesOf(ingestion), ingestion.maxFileBytes ?? Infinity),
    });
    if (waiting.length === 0) return [];
    const claims = await claimFiles(this.#db, {
      refs: waiting.map(({ id, version }) => ({ id, version, ingestionId: ingestion.id })),
      worker: this.#workerId,
      leaseMs: this.#leaseMs,
    });
    const claimedAt = performance.now();
    const key = targetKey(attempt.target);
    const sparkPathRules = readSourceSettings(ingestion.listing).sparkPathRules;
    const files: IngestFile[] = [];
    const strays: IngestFile[] = [];
    const refused: [IngestFile, Outcome][] = [];
    const sparkReadsZstd = await this.#sparkReadsZstd(
      ingestion,
      claims,
      this.#logger.child({ ingestion: ingestion.name, batchId: attempt.batchId }),
    );
    try {
      for (const claim of claims) {
        const file: IngestFile = {
          uri: claim.path,
          bytes: claim.size,
          target: targetOf(ingestion, claim),
          signal: this.#shutdown.signal,
          claim,
          fileId: claim.id,
          version: claim.version,
          readPath: toSparkUri(claim.path, sparkPathRules),
          lastAttempt: claim.attempt >= ingestion.maxAttempts,
          log: this.#logger.child({
            ingestion: ingestion.name,
            fileId: claim.id,
            version: claim.version,
            attempt: claim.attempt,
            adopted: true,
          }),
          ingestion: ingestion.name,
          claimedAt,
        };
        // Not expected (the query asks for files with no earlier batch, of the batch's kind), but a file
        // that cannot go in this batch is given back rather than written wrongly.
        const refusal =
          claim.previousBatchId !== null || targetKey(file.target) !== key
            ? undefined
            : await this.#refusal(ingestion, claim, sparkReadsZstd);
        if (claim.previousBatchId !== null || targetKey(file.target) !== key) strays.push(file);
        else if (refusal !== undefined) refused.push([file, refusal]);
        else files.push(file);
      }
    } catch (error) {
      // Nothing is held yet: give back everything claimed.
      await this.#handBackAll(
        claims.map((claim) => ({ fileId: claim.id, version: claim.version, lastAttempt: false })),
        error,
      );
      throw error;
    }
    if (strays.length > 0) await this.#handBackAll(strays, new Error("claimed for a batch it cannot join"));
    for (const [file, refusal] of refused) await this.#refuse(file, refusal);
    for (const file of files) this.#leases.hold(file.fileId);
    if (files.length > 0) {
      this.#logger.debug(
        {
          batchId: attempt.batchId,
          table: attempt.target.table,
          own: attempt.files.length,
          adopted: files.length,
        },
        "batch takes on files still waiting for their jobs",
      );
    }
    return files.map((file) => ({
      file,
      follow: (commit) => {
        const following = this.#followAdopted(file, commit).finally(() => this.#following.delete(following));
        this.#following.add(following);
      },
    }));
  }

  /** What `process` does with a file's fate, for a file a batch took on without its job. */
  async #followAdopted(file: IngestFile, commit: Promise<FileCommit>): Promise<void> {
    try {
      const { batchId, snapshotId, records } = await commit;
      file.log.info({ batchId, snapshotId, records }, "file ingested");
    } catch (err) {
      // A failure the lifecycle recorded stands (PENDING is enqueued again by the reconciler).
      if (err instanceof BatchFencedError || err instanceof IngestorClosedError) {
        await this.#handBack(file, err);
      }
      file.log.info({ batchId: null, err: errorMessage(err) }, "file taken on by a batch did not land");
    } finally {
      this.#leases.release(file.fileId);
    }
  }

  /** Gives claimed files back in one round trip (see #handBack). */
  async #handBackAll(
    files: Pick<IngestFile, "fileId" | "version" | "lastAttempt">[],
    reason: unknown,
  ): Promise<void> {
    const outcomes = files.map((file) => ({
      ...failureOutcome(file, reason, null, false),
      status: "PENDING" as const,
    }));
    try {
      await recordOutcomes(this.#db, { worker: this.#workerId, outcomes });
    } catch (err) {
      this.#logger.warn(
        { batchId: null, files: files.length, err: errorMessage(err) },
        "could not hand files back; their leases will expire",
      );
    }
  }

  /** Gives a claimed file back (PENDING, lease cleared, attempt not counted) so another worker can take it. */
  async #handBack(file: IngestFile, reason: unknown): Promise<void> {
    await this.#handBackAll([file], reason);
  }

  #leasesLost(fileIds: number[]): void {
    for (const fileId of fileIds) {
      const held = this.#held.get(fileId);
      if (!held || held.writing) continue;
      this.#logger.warn({ fileId, batchId: null }, "lease lost; dropping the file before it is written");
      held.controller.abort(new LeaseLostError(fileId));
    }
  }
}

/** The ingestion's `largeFileBytes`, or the default. */
function largeFileBytesOf(ingestion: Ingestion): number {
  return ingestion.largeFileBytes ?? DEFAULT_LARGE_FILE_BYTES;
}

/**
 * Why a claimed file is not written at all, as the outcome to record for it; undefined when it is written.
 * A file above the ingestion's `maxFileBytes` is SKIPPED (raising the limit and `lakeferry retry` takes it
 * again); a file Spark cannot decompress ({@link unreadableCompression}) FAILED, before it fails a batch.
 */
function refusalOf(ingestion: Ingestion, claim: ClaimedFile, sparkReadsZstd: boolean): Outcome | undefined {
  if (ingestion.maxFileBytes !== null && claim.size > ingestion.maxFileBytes) {
    return {
      id: claim.id,
      version: claim.version,
      status: "SKIPPED",
      errorType: FILE_TOO_LARGE,
      errorMessage:
        `the file is ${claim.size} bytes, more than the ingestion's maxFileBytes (${ingestion.maxFileBytes}); ` +
        `to ingest it, raise maxFileBytes (and give Spark more memory if it reads the file whole), then ` +
        `lakeferry retry ${ingestion.name} --file ${claim.path}`,
      counted: false,
    };
  }
  const unreadable = unreadableCompression(ingestion.format as FileFormat, claim.path, sparkReadsZstd);
  if (unreadable !== undefined) {
    return {
      id: claim.id,
      version: claim.version,
      status: "FAILED",
      errorType: UNSUPPORTED_COMPRESSION,
      errorMessage: unreadable,
    };
  }
  return undefined;
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
    // Iceberg can replace a file's rows only by dropping whole data files.
    isolateFiles: ingestion.modifiedPolicy === "replace",
    schemaEvolution: ingestion.schemaEvolution ?? (ingestion.schemaDdl === null ? "addNewColumns" : "none"),
    ...(ingestion.schemaHints === null ? {} : { schemaHints: ingestion.schemaHints }),
    ...(ingestion.rescuedDataColumn === null ? {} : { rescuedDataColumn: ingestion.rescuedDataColumn }),
    ...withBadRecords(badRecordsOf(ingestion.badRecords)),
  };
}

function withBadRecords(policy: BadRecordsPolicy | undefined): { badRecords?: BadRecordsPolicy } {
  return policy === undefined ? {} : { badRecords: policy };
}
