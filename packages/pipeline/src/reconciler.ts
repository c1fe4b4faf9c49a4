import { errorMessage, InvalidInputError, LakeferryError, type Logger } from "@lakeferry/core";
import {
  abandonStaleRuns,
  acquireMaintenanceLease,
  changedPendingFiles,
  databaseNow,
  pendingFiles,
  pruneSubmissionRequests,
  readBatch,
  reclaimExpiredLeases,
  releaseMaintenanceLease,
  unresolvedBatches,
  type ChangedPendingCursor,
  type Database,
  type FileRef,
  type Ingestion,
  type UnresolvedBatch,
} from "@lakeferry/db";
import { ingestJobId, type IngestQueue } from "@lakeferry/queue";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { resolveBatch } from "./batch-recovery.ts";
import { enqueueFiles } from "./enqueue-files.ts";
import type { BatchWriter } from "./batch-lifecycle.ts";
import { IngestionCache } from "./ingestion-cache.ts";
import type { PipelineEvents } from "./pipeline-events.ts";

export interface ReconcilerOptions {
  db: Database;
  queue: IngestQueue;
  writer: BatchWriter;
  logger: Logger;
  /**
   * Time between passes, in ms (the first pass runs at `start`), each delay spread by ±`jitter` so that a
   * fleet's reconcilers do not knock on the lease together. Default 30 000.
   */
  intervalMs?: number;
  /** Spread of each delay between passes, as a fraction of `intervalMs` (0 to 1). Default 0.2. */
  jitter?: number;
  /**
   * This reconciler's name in the fleet-wide lease (`maintenance_leases`, name `reconciler`): only its
   * holder passes, the others stand by. Default `<host>-<pid>-<random>`.
   */
  holder?: string;
  /**
   * How long the lease lasts without renewal, in ms: the holder renews it every pass (and during a long
   * one); a holder that dies without releasing it is replaced this long after its last renewal. Must
   * exceed `intervalMs × (1 + jitter)` and twice `stepTimeoutMs`. Default 3 × the larger of `intervalMs`
   * and `stepTimeoutMs`.
   */
  leaseMs?: number;
  /**
   * Deadline of every step of a pass (one Postgres statement, one Redis round, one Spark lookup), in ms: a
   * hung call fails its step instead of stalling the pass, so lease reclaim keeps running. Default 30 000.
   */
  stepTimeoutMs?: number;
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
  /**
   * Between full sweeps a pass looks only at PENDING rows changed since the last pass, less this margin
   * (ms) for rows whose change committed late. Default 60 000.
   */
  changeOverlapMs?: number;
  /**
   * Time between full sweeps of every PENDING file, in ms: the safety net for jobs lost without Redis
   * losing its data (removed by hand, say). A full sweep also runs on a holder's first pass and whenever
   * Redis lost its data. Default 3 600 000 (hourly).
   */
  fullSweepIntervalMs?: number;
  /**
   * Where batches this reconciler resolves are announced as their writer would have (`batch:finished`,
   * and `file:settled` SUCCESS for each file of a batch found or made committed), marked `recovered`.
   * Default: nowhere.
   */
  events?: PipelineEvents;
  /**
   * A submission's run (`upstream`) still `running` this long after it started is closed as abandoned: its
   * process stopped (or lost Postgres) before finishing it. A submission of 5,000 paths takes seconds; one
   * that was only slow and finishes later records its own outcome over this one. In ms; default 600 000.
   */
  upstreamRunTimeoutMs?: number;
  /**
   * The same for discovery runs (`schedule`, `manual`), which list a whole source and may take hours; they
   * carry no sign of life a reconciler could check, so only their age tells. In ms; default 86 400 000.
   */
  discoveryRunTimeoutMs?: number;
  /**
   * How long the API's idempotency records of submissions (`submission_requests`, one per `requestId`) are
   * kept, in ms: older ones are deleted, in chunks, and a request sent again after that is a new one.
   * Default 604 800 000 (7 days).
   */
  submissionRetentionMs?: number;
}

/** What one pass did. */
export interface ReconcileResult {
  /** PENDING files that had no live job and were enqueued again. */
  requeued: number;
  /** PROCESSING files whose lease expired, made PENDING and enqueued again. */
  reclaimed: number;
  /** OPEN batches resolved (COMMITTED from the table's snapshots, or ABANDONED). */
  batchesResolved: number;
  /**
   * Whether this reconciler held the fleet's reconciler lease and made the pass. False: another holds it,
   * nothing was done (every count is 0).
   */
  active: boolean;
  /**
   * How PENDING files were looked at: `full` (all of them: a holder's first pass, Redis lost its data, or
   * the periodic safety sweep), `changes` (only rows changed since the last pass), null when standing by
   * or when the look failed.
   */
  sweep: "full" | "changes" | null;
  /** PENDING rows read and checked against Redis this pass: after a quiet interval, 0. */
  pendingChecked: number;
  /** Runs left `running` by a process that stopped, closed as abandoned. */
  runsAbandoned: number;
  /** Submission records past their retention, deleted. */
  submissionRequestsPruned: number;
}

/** The name of the reconciler's row in `maintenance_leases`. */
export const RECONCILER_LEASE = "reconciler";

/** A step of a reconcile pass did not finish within `stepTimeoutMs`. Retryable: the next pass tries again. */
export class ReconcileStepTimeoutError extends LakeferryError {
  /** What the step was doing. */
  readonly step: string;
  readonly timeoutMs: number;

  constructor(step: string, timeoutMs: number) {
    super("RECONCILE_STEP_TIMEOUT", `${step}: no answer within ${timeoutMs} ms`, { retryable: true });
    this.step = step;
    this.timeoutMs = timeoutMs;
  }
}

/** The lease expired and was taken by another reconciler during a pass: the pass stops. */
class LeaseLostError extends Error {}

const PAGE = 1_000;
/** Chunks of old submission records deleted in one pass at most: a backlog is worked off over passes. */
const PRUNE_CHUNKS_PER_PASS = 20;
const DAY_MS = 86_400_000;

/**
 * Postgres is the truth, Redis is disposable: periodically (and at start) reclaims PROCESSING files whose
 * lease expired, resolves write batches left OPEN by crashed writers, and re-enqueues PENDING files that
 * have no live job (Redis flushed or a job lost); then keeps house: closes runs whose process stopped
 * before finishing them, and deletes submission records past their retention. One reconciler of the fleet
 * passes at a time (the holder of a lease row in Postgres); each pass costs what changed since the last one
 * (see {@link ReconcilerOptions.fullSweepIntervalMs}); every step has a deadline.
 */
export class Reconciler {
  readonly holder: string;
  readonly #db: Database;
  readonly #queue: IngestQueue;
  readonly #writer: BatchWriter;
  readonly #logger: Logger;
  readonly #intervalMs: number;
  readonly #jitter: number;
  readonly #leaseMs: number;
  readonly #stepTimeoutMs: number;
  readonly #batchGraceMs: number;
  readonly #pendingGraceMs: number;
  readonly #changeOverlapMs: number;
  readonly #fullSweepIntervalMs: number;
  readonly #events: PipelineEvents | undefined;
  readonly #upstreamRunTimeoutMs: number;
  readonly #discoveryRunTimeoutMs: number;
  readonly #submissionRetentionMs: number;
  readonly #ingestions: IngestionCache;
  /** Batches whose resolution timed out: tried after the others. */
  readonly #slowBatches = new Set<string>();
  readonly #abort = new AbortController();
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<ReconcileResult> | undefined;
  #started = false;
  /** Whether the last lease call left us holding the lease, and when (local clock) that call began. */
  #held = false;
  #renewedAt = 0;
  /** The Redis epoch and database-clock watermark of the last completed look at PENDING files. */
  #epoch: string | undefined;
  #watermark: Date | undefined;
  #lastFullSweepAt = 0;

  constructor(options: ReconcilerOptions) {
    this.#db = options.db;
    this.#queue = options.queue;
    this.#writer = options.writer;
    this.#logger = options.logger;
    this.#intervalMs = positive("intervalMs", options.intervalMs ?? 30_000);
    this.#jitter = options.jitter ?? 0.2;
    if (!(this.#jitter >= 0 && this.#jitter <= 1)) {
      throw new InvalidInputError("jitter", `must be between 0 and 1, got ${this.#jitter}`);
    }
    this.#stepTimeoutMs = positive("stepTimeoutMs", options.stepTimeoutMs ?? 30_000);
    this.#leaseMs = positive(
      "leaseMs",
      options.leaseMs ?? 3 * Math.max(this.#intervalMs, this.#stepTimeoutMs),
    );
    if (this.#leaseMs <= this.#intervalMs * (1 + this.#jitter) || this.#leaseMs < 2 * this.#stepTimeoutMs) {
      throw new InvalidInputError(
        "leaseMs",
        `must exceed intervalMs × (1 + jitter) and be at least 2 × stepTimeoutMs, got ${this.#leaseMs}`,
      );
    }
    this.#batchGraceMs = options.batchGraceMs ?? 60_000;
    this.#pendingGraceMs = options.pendingGraceMs ?? 5_000;
    this.#changeOverlapMs = options.changeOverlapMs ?? 60_000;
    this.#fullSweepIntervalMs = options.fullSweepIntervalMs ?? 3_600_000;
    this.#events = options.events;
    this.#upstreamRunTimeoutMs = positive("upstreamRunTimeoutMs", options.upstreamRunTimeoutMs ?? 600_000);
    this.#discoveryRunTimeoutMs = positive("discoveryRunTimeoutMs", options.discoveryRunTimeoutMs ?? DAY_MS);
    this.#submissionRetentionMs = positive(
      "submissionRetentionMs",
      options.submissionRetentionMs ?? 7 * DAY_MS,
    );
    this.holder = options.holder ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
    this.#ingestions = new IngestionCache(options.db);
  }

  /** One pass (or, when another reconciler holds the lease, none). Concurrent calls share the running pass. */
  runOnce(): Promise<ReconcileResult> {
    this.#running ??= this.#pass().finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** Runs a pass now and then about every `intervalMs` until closed. */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    const tick = (): void => {
      this.runOnce()
        .catch((err: unknown) => this.#logger.warn({ err: errorMessage(err) }, "reconcile pass failed"))
        .finally(() => {
          if (!this.#abort.signal.aborted) {
            this.#timer = setTimeout(tick, this.#nextDelay());
            this.#timer.unref();
          }
        });
    };
    tick();
  }

  /** Stops the timer, waits for a running pass (its steps are cancelled) and releases the lease if held. */
  async close(): Promise<void> {
    this.#abort.abort();
    clearTimeout(this.#timer);
    await this.#running?.catch(() => {});
    if (!this.#held) return;
    this.#held = false;
    try {
      await withDeadline("release the reconciler lease", this.#stepTimeoutMs, undefined, () =>
        releaseMaintenanceLease(this.#db, { name: RECONCILER_LEASE, holder: this.holder }),
      );
    } catch (err) {
      // It expires by itself; another reconciler takes over then.
      this.#logger.warn({ err: errorMessage(err) }, "could not release the reconciler lease");
    }
  }

  #nextDelay(): number {
    return Math.round(this.#intervalMs * (1 + this.#jitter * (2 * Math.random() - 1)));
  }

  async #pass(): Promise<ReconcileResult> {
    const result: ReconcileResult = {
      requeued: 0,
      reclaimed: 0,
      batchesResolved: 0,
      active: false,
      sweep: null,
      pendingChecked: 0,
      runsAbandoned: 0,
      submissionRequestsPruned: 0,
    };
    if (this.#abort.signal.aborted || !(await this.#takeLease())) return result;
    result.active = true;
    try {
      // Rows changed from here on are the next pass's (read before any step changes one).
      const passStart = await this.#step("read the database clock", () => databaseNow(this.#db));
      // Reclaim first: a hung batch lookup must not hold up files whose lease expired.
      result.reclaimed += await this.#phase("reclaim expired leases", 0, () => this.#reclaimExpired());
      result.batchesResolved = await this.#phase("resolve open batches", 0, () => this.#resolveOpenBatches());
      // Files of batches just abandoned are reclaimable now rather than a pass later.
      if (result.batchesResolved > 0) {
        result.reclaimed += await this.#phase("reclaim expired leases", 0, () => this.#reclaimExpired());
      }
      const look = await this.#phase("re-enqueue PENDING files without a job", undefined, () =>
        this.#requeuePending(passStart),
      );
      if (look) {
        result.sweep = look.sweep;
        result.pendingChecked = look.checked;
        result.requeued = look.requeued;
      }
      result.runsAbandoned = await this.#phase("close abandoned runs", 0, () => this.#closeAbandonedRuns());
      result.submissionRequestsPruned = await this.#phase("prune submission records", 0, () =>
        this.#pruneSubmissionRequests(),
      );
    } catch (err) {
      if (!(err instanceof LeaseLostError)) throw err;
      this.#logger.warn({ holder: this.holder }, "reconciler lease lost during a pass; standing by");
    }
    const { requeued, reclaimed, batchesResolved, runsAbandoned, submissionRequestsPruned } = result;
    if (requeued + reclaimed + batchesResolved + runsAbandoned + submissionRequestsPruned > 0) {
      this.#logger.info(result, "reconciled");
    } else this.#logger.debug(result, "reconciled: nothing to do");
    return result;
  }

  /** Runs one phase; its failure is logged and the pass goes on (a lost lease or closing stops it). */
  async #phase<T>(what: string, fallback: T, run: () => Promise<T>): Promise<T> {
    if (this.#abort.signal.aborted) return fallback;
    try {
      return await run();
    } catch (err) {
      if (err instanceof LeaseLostError) throw err;
      if (!this.#abort.signal.aborted) {
        this.#logger.warn({ err: errorMessage(err) }, `reconcile: ${what} failed`);
      }
      return fallback;
    }
  }

  /** Takes or renews the lease; on any doubt (lost, or the call failed) forgets what the last look saw. */
  async #takeLease(): Promise<boolean> {
    const askedAt = Date.now();
    let held = false;
    try {
      held = await this.#step("take the reconciler lease", () =>
        acquireMaintenanceLease(this.#db, {
          name: RECONCILER_LEASE,
          holder: this.holder,
          ttlMs: this.#leaseMs,
        }),
      );
    } finally {
      if (held) {
        this.#renewedAt = askedAt;
      } else {
        // A new holder starts with a full sweep: it cannot know what happened while it stood by.
        this.#epoch = undefined;
        this.#watermark = undefined;
      }
      this.#held = held;
    }
    return held;
  }

  /** Renews the lease when a third of it has gone by; stops the pass if another reconciler took it. */
  async #keepLease(): Promise<void> {
    if (Date.now() - this.#renewedAt < this.#leaseMs / 3) return;
    if (!(await this.#takeLease())) throw new LeaseLostError();
  }

  /** One step under the deadline: rejects with ReconcileStepTimeoutError when `stepTimeoutMs` passes. */
  #step<T>(what: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return withDeadline(what, this.#stepTimeoutMs, this.#abort.signal, run);
  }

  async #resolveOpenBatches(): Promise<number> {
    let resolved = 0;
    const batches = await this.#step("list open batches", () =>
      unresolvedBatches(this.#db, { olderThanMs: this.#batchGraceMs }),
    );
    // A batch whose resolution timed out goes last, so that one slow table cannot hold up all the others.
    const ordered = [
      ...batches.filter((batch) => !this.#slowBatches.has(batch.id)),
      ...batches.filter((batch) => this.#slowBatches.has(batch.id)),
    ];
    for (const batch of ordered) {
      if (this.#abort.signal.aborted) break;
      await this.#keepLease();
      try {
        const { resolution, settledHere } = await this.#step(`resolve batch ${batch.id}`, (signal) =>
          resolveBatch(this.#db, this.#writer, batch.id, {
            skipLive: true,
            logger: this.#logger,
            signal,
          }),
        );
        this.#slowBatches.delete(batch.id);
        if (resolution !== "live") {
          resolved += 1;
          // A batch its writer settled meanwhile is the writer's to announce.
          if (settledHere) await this.#announceResolved(batch, resolution);
        }
      } catch (err) {
        // Spark down, say: the batch stays OPEN and its files stay put until a later pass.
        this.#logger.warn(
          { batchId: batch.id, table: batch.table, err: errorMessage(err) },
          "could not resolve batch",
        );
        // One lookup that hung says the rest would too; they wait for the next pass.
        if (err instanceof ReconcileStepTimeoutError) {
          this.#slowBatches.add(batch.id);
          break;
        }
      }
    }
    return resolved;
  }

  /**
   * Announces a batch this pass resolved as its writer would have on its verdict: a batch committed
   * (published now, or found published) has each file's SUCCESS with its bytes and rows and the batch's
   * `committed`; one abandoned has `abandoned`. Marked `recovered`. Only what Postgres shows the batch
   * became is announced (a batch someone else settled meanwhile is theirs to announce); a failed read
   * loses the announcement, never the resolution.
   */
  async #announceResolved(batch: UnresolvedBatch, resolution: "committed" | "abandoned"): Promise<void> {
    const events = this.#events;
    if (events === undefined) return;
    try {
      const [record, ingestion] = await Promise.all([
        this.#step(`read batch ${batch.id}`, () => readBatch(this.#db, batch.id)),
        this.#step("read an ingestion", () => this.#ingestions.get(batch.ingestionId)),
      ]);
      const expected = resolution === "committed" ? "COMMITTED" : "ABANDONED";
      if (record === undefined || record.state !== expected) return;
      const name = ingestion?.name ?? String(batch.ingestionId);
      let records = 0;
      for (const member of record.members) {
        if (resolution !== "committed") break;
        const rows = member.records ?? 0;
        records += rows;
        events.emit("file:settled", {
          ingestion: name,
          fileId: member.id,
          status: "SUCCESS",
          durationSeconds: 0,
          bytes: member.size,
          records: rows,
          recovered: true,
        });
      }
      events.emit("batch:finished", {
        ingestion: name,
        batchId: batch.id,
        outcome: resolution,
        files: record.members.length,
        bytes: record.members.reduce((sum, member) => sum + member.size, 0),
        records,
        durationSeconds: 0,
        recovered: true,
      });
    } catch (err) {
      this.#logger.warn(
        { batchId: batch.id, err: errorMessage(err) },
        "batch resolved, but not announced (metrics miss it)",
      );
    }
  }

  /**
   * Closes runs still `running` long after they started (see {@link ReconcilerOptions.upstreamRunTimeoutMs});
   * the files they registered are PENDING rows, which the look at PENDING files enqueues if their jobs
   * were lost too.
   */
  async #closeAbandonedRuns(): Promise<number> {
    let total = 0;
    for (;;) {
      await this.#keepLease();
      const runs = await this.#step("close abandoned runs", () =>
        abandonStaleRuns(this.#db, {
          upstreamOlderThanMs: this.#upstreamRunTimeoutMs,
          discoveryOlderThanMs: this.#discoveryRunTimeoutMs,
          limit: PAGE,
        }),
      );
      for (const run of runs) {
        this.#logger.warn(
          { runId: run.id, ingestionId: run.ingestionId, trigger: run.trigger, startedAt: run.startedAt },
          "run abandoned: its process stopped before finishing it; the files it registered are queued as usual",
        );
      }
      total += runs.length;
      if (runs.length < PAGE) return total;
    }
  }

  /** Deletes submission records past their retention, a chunk per step, up to a bound per pass. */
  async #pruneSubmissionRequests(): Promise<number> {
    let total = 0;
    for (let chunk = 0; chunk < PRUNE_CHUNKS_PER_PASS; chunk++) {
      await this.#keepLease();
      const deleted = await this.#step("prune submission records", () =>
        pruneSubmissionRequests(this.#db, { olderThanMs: this.#submissionRetentionMs, limit: PAGE }),
      );
      total += deleted;
      if (deleted < PAGE) break;
    }
    return total;
  }

  async #reclaimExpired(): Promise<number> {
    let total = 0;
    for (;;) {
      await this.#keepLease();
      const reclaimed = await this.#step("reclaim expired leases", () =>
        reclaimExpiredLeases(this.#db, { limit: PAGE }),
      );
      total += reclaimed.length;
      // Enqueueing may fail; the rows are PENDING from now on and the next look at changes finds them.
      await this.#enqueue(reclaimed);
      if (reclaimed.length < PAGE) return total;
    }
  }

  /**
   * Re-enqueues PENDING files without a live job: all of them when Redis lost its data (its epoch marker
   * changed), on a holder's first pass, or every `fullSweepIntervalMs`; otherwise only rows changed since
   * the last completed look. Only a completed look moves the marks: a failed one is repeated next pass.
   */
  async #requeuePending(
    passStart: Date,
  ): Promise<{ sweep: "full" | "changes"; checked: number; requeued: number }> {
    const { epoch, created } = await this.#step("read the Redis epoch", () => this.#queue.redisEpoch());
    const redisLost = this.#epoch !== undefined && epoch !== this.#epoch;
    if (redisLost) {
      this.#logger.warn({ epoch }, "Redis lost its data: checking every PENDING file for its job");
    } else if (created) {
      this.#logger.warn(
        { epoch },
        "no Redis epoch marker (a new Redis, or one that lost its data): checking every PENDING file for its job",
      );
    }
    const since = this.#watermark;
    const full =
      created ||
      redisLost ||
      since === undefined ||
      Date.now() - this.#lastFullSweepAt >= this.#fullSweepIntervalMs;
    const counts = full
      ? await this.#sweepAll()
      : await this.#sweepChanges(new Date(since.getTime() - this.#changeOverlapMs));
    this.#epoch = epoch;
    this.#watermark = new Date(passStart.getTime() - this.#pendingGraceMs);
    if (full) this.#lastFullSweepAt = Date.now();
    return { sweep: full ? "full" : "changes", ...counts };
  }

  async #sweepAll(): Promise<{ checked: number; requeued: number }> {
    let checked = 0;
    let requeued = 0;
    let afterId: number | undefined;
    for (;;) {
      await this.#keepLease();
      const page = await this.#step("read PENDING files", () =>
        pendingFiles(this.#db, {
          limit: PAGE,
          olderThanMs: this.#pendingGraceMs,
          ...(afterId === undefined ? {} : { afterId }),
        }),
      );
      checked += page.length;
      requeued += await this.#requeueWithoutJob(page);
      if (page.length < PAGE) return { checked, requeued };
      afterId = page[page.length - 1]?.id;
    }
  }

  async #sweepChanges(since: Date): Promise<{ checked: number; requeued: number }> {
    let checked = 0;
    let requeued = 0;
    let after: ChangedPendingCursor | undefined;
    for (;;) {
      await this.#keepLease();
      const page = await this.#step("read changed PENDING files", () =>
        changedPendingFiles(this.#db, {
          since,
          limit: PAGE,
          olderThanMs: this.#pendingGraceMs,
          ...(after ? { after } : {}),
        }),
      );
      checked += page.length;
      requeued += await this.#requeueWithoutJob(page);
      const last = page[page.length - 1];
      if (page.length < PAGE || !last) return { checked, requeued };
      after = { changedAt: last.changedAt, id: last.id };
    }
  }

  /** Enqueues the files of `page` that no live job holds; returns how many jobs were new. */
  async #requeueWithoutJob(page: (FileRef & { ingestionId: number })[]): Promise<number> {
    if (page.length === 0) return 0;
    const jobId = (file: FileRef): string => ingestJobId({ fileId: file.id, version: file.version });
    const live = await this.#step("check jobs in Redis", () => this.#queue.liveJobIds(page.map(jobId)));
    return this.#enqueue(page.filter((file) => !live.has(jobId(file))));
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
      const ingestion: Ingestion | undefined = await this.#step("read an ingestion", () =>
        this.#ingestions.get(ingestionId),
      );
      if (!ingestion) continue;
      added += await this.#step("enqueue files", () => enqueueFiles(this.#queue, ingestion, group));
    }
    return added;
  }
}

function positive(field: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new InvalidInputError(field, `must be a positive number of milliseconds, got ${value}`);
  }
  return value;
}

/**
 * Runs `run` with a signal that aborts after `timeoutMs` (or with `outer`), and settles when the signal
 * aborts even if `run` ignores it: the call may go on in the background, but the caller does not wait.
 */
function withDeadline<T>(
  what: string,
  timeoutMs: number,
  outer: AbortSignal | undefined,
  run: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = outer ? AbortSignal.any([outer, timeout]) : timeout;
  const reason = (): Error =>
    timeout.aborted
      ? new ReconcileStepTimeoutError(what, timeoutMs)
      : new LakeferryError("RECONCILER_CLOSED", `${what}: the reconciler is closing`, { retryable: true });
  if (signal.aborted) return Promise.reject(reason());
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(reason());
    signal.addEventListener("abort", onAbort, { once: true });
    Promise.resolve()
      .then(() => run(signal))
      .then(resolve, reject)
      .finally(() => signal.removeEventListener("abort", onAbort));
  });
}
