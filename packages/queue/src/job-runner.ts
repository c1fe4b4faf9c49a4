import {
  InvalidInputError,
  LakeferryError,
  createLogger,
  errorMessage,
  errorType,
  isRetryable,
  outageOf,
} from "@lakeferry/core";
import { UnrecoverableError, WaitingError, Worker, type Job } from "bullmq";
import type { z } from "zod";
import { DEFAULT_PREFIX, KEEP_COMPLETED, KEEP_FAILED, type QueueConnectionOptions } from "./job-catalog.ts";
import { JobLockLostError, WorkerClosingError } from "./job-errors.ts";
import { redisConnection, type RedisConnection } from "./redis-connection.ts";

/** What a processor is told about the job it runs. */
export interface JobContext<T> {
  /** The validated payload. */
  data: T;
  /** This attempt, 1-based. */
  attempt: number;
  /** The most attempts the job gets. */
  maxAttempts: number;
  /** The BullMQ job id. */
  jobId: string;
  /**
   * Aborted when the worker's close timeout runs out (reason {@link WorkerClosingError}) or the job's lock
   * could not be renewed (reason {@link JobLockLostError}).
   */
  signal: AbortSignal;
}

export interface JobRunnerOptions<T> extends QueueConnectionOptions {
  queueName: string;
  /** The only job name the queue takes; a job named otherwise fails at once. Default: any name. */
  jobName?: string;
  schema: z.ZodType<T>;
  concurrency: number;
  lockDurationMs?: number;
  /** Works on a job; what it resolves to is kept as the job's BullMQ return value. */
  process: (job: JobContext<T>) => Promise<unknown>;
  onError?: (err: unknown) => void;
  /**
   * Called when a job failed because a dependency is down (an error with an `outage`): the queue pauses for
   * `pauseMs` (doubling while the outage lasts, up to `maxOutagePauseMs`) and the job goes back to waiting
   * without spending an attempt. Jobs that were already running when the pause began and fail the same way
   * go back to waiting too, without a call and without lengthening the pause: one batch of 300 files that
   * fails is one outage, not 300. Called with `pauseMs` 0 when the breaker closes: with `outage` `none`
   * when a job succeeds again, with the dependency's name when the pause ended and no job started since to
   * try it (an empty queue: nothing is paused any more, and the next job that fails opens it again).
   */
  onOutage?: (event: OutageEvent) => void;
  /** First pause after an outage, in ms. Default 1 000. */
  minOutagePauseMs?: number;
  /** Longest pause, in ms. Default 30 000. */
  maxOutagePauseMs?: number;
}

/** What {@link JobRunnerOptions.onOutage} is told. */
export interface OutageEvent {
  /** The dependency that is down; when closing, `none` or the dependency whose pause ended unprobed. */
  outage: string;
  /** How long the queue pauses, in ms; 0 when the breaker closes. */
  pauseMs: number;
  /** The error that opened the breaker; undefined when closing. */
  error: unknown;
}

export interface CloseOptions {
  /** How long to wait for running jobs before aborting their signals. Default 30 000 ms. */
  timeoutMs?: number;
  /**
   * How long processors get to stop after their signal is aborted. A processor still running then is
   * abandoned: its job goes back to waiting while the processor's promise is ignored. Default 2 000 ms.
   */
  abortGraceMs?: number;
}

const DEFAULT_CLOSE_TIMEOUT_MS = 30_000;
const DEFAULT_ABORT_GRACE_MS = 2_000;

interface RunningJob {
  controller: AbortController;
  abandon: () => void;
  /** When it started (`performance.now()`). */
  startedAt: number;
}

/**
 * After a pause ends, how long the breaker waits for a job to start and try the dependency before it closes
 * with none (while one that started after the pause runs, it waits that long again).
 */
const UNPROBED_CLOSE_AFTER_MS = 1_000;

/**
 * A BullMQ worker with lakeferry's conventions: validated payloads, errors that say `retryable: false`
 * stop retries (BullMQ's UnrecoverableError), and a bounded shutdown that puts interrupted jobs back to
 * waiting without spending an attempt.
 */
export class JobRunner<T> {
  private readonly options: JobRunnerOptions<T>;
  private readonly onError: (err: unknown) => void;
  private readonly running = new Map<string, RunningJob>();
  private redis: RedisConnection | undefined;
  private worker: Worker | undefined;
  private closing: Promise<void> | undefined;
  /** Consecutive outage pauses; the breaker's next pause doubles with each. */
  private outages = 0;
  /** When (`performance.now()`) the breaker last paused the queue, and until when; reset once a job succeeds. */
  private pausedAt = Number.NEGATIVE_INFINITY;
  private pausedUntil = 0;
  /** The dependency of the last pause. */
  private pausedFor = "none";
  /** Closes the breaker if no job tries the dependency once the pause is over. */
  private unprobedTimer: NodeJS.Timeout | undefined;

  constructor(options: JobRunnerOptions<T>) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1) {
      throw new InvalidInputError("concurrency", `must be an integer ≥ 1, got ${options.concurrency}`);
    }
    this.options = options;
    this.onError = options.onError ?? defaultOnError(options.queueName);
  }

  async start(): Promise<void> {
    if (this.closing) {
      const message = `the ${this.options.queueName} worker was closed; create a new one`;
      throw new LakeferryError("WORKER_CLOSED", message, { retryable: false });
    }
    if (this.worker) return;
    this.redis = redisConnection(this.options.redisUrl);
    const worker = new Worker(this.options.queueName, (job, token) => this.runJob(job, token), {
      connection: this.redis,
      prefix: this.options.prefix ?? DEFAULT_PREFIX,
      concurrency: this.options.concurrency,
      autorun: false,
      // BullMQ honours a manual rateLimit (the outage breaker) only when the worker has a limiter; this one
      // never limits by itself.
      limiter: { max: 1_000_000, duration: 1_000 },
      // For jobs added without a retention of their own (by producers outside lakeferry): BullMQ keeps
      // every finished job otherwise. Postgres keeps the history.
      removeOnComplete: KEEP_COMPLETED,
      removeOnFail: KEEP_FAILED,
      ...(this.options.lockDurationMs === undefined ? {} : { lockDuration: this.options.lockDurationMs }),
    });
    worker.on("error", (err) => this.onError(err));
    worker.on("lockRenewalFailed", (jobIds: string[]) => {
      for (const jobId of jobIds) this.running.get(jobId)?.controller.abort(new JobLockLostError(jobId));
    });
    this.worker = worker;
    worker.run().catch((err: unknown) => this.onError(err));
    await worker.waitUntilReady();
  }

  /**
   * Stops taking jobs and waits for running ones up to `timeoutMs`; then aborts their signals, waits up to
   * `abortGraceMs` more, abandons what still runs, and closes the connections. Interrupted jobs return to
   * waiting for another worker. Calling it again returns the same promise.
   */
  close(options: CloseOptions = {}): Promise<void> {
    this.closing ??= this.shutDown(
      options.timeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS,
      options.abortGraceMs ?? DEFAULT_ABORT_GRACE_MS,
    );
    return this.closing;
  }

  private async shutDown(timeoutMs: number, abortGraceMs: number): Promise<void> {
    clearTimeout(this.unprobedTimer);
    const worker = this.worker;
    if (worker) {
      // A non-forced close stops fetching at once and settles when the running jobs have settled.
      const closed = worker.close();
      if (!(await settlesWithin(closed, timeoutMs))) {
        const reason = new WorkerClosingError(timeoutMs);
        for (const job of this.running.values()) job.controller.abort(reason);
        if (!(await settlesWithin(closed, abortGraceMs))) {
          for (const job of this.running.values()) job.abandon();
        }
      }
      await closed;
    }
    await this.redis?.quit().catch(() => this.redis?.disconnect());
  }

  private async runJob(job: Job, token: string | undefined): Promise<unknown> {
    const jobId = job.id ?? "";
    const { jobName } = this.options;
    if (jobName !== undefined && job.name !== jobName) {
      throw new UnrecoverableError(
        `unknown job name ${JSON.stringify(job.name)}: ${this.options.queueName} takes ${JSON.stringify(jobName)} jobs only`,
      );
    }
    const parsed = this.options.schema.safeParse(job.data);
    if (!parsed.success) {
      const issues = parsed.error.issues.map(
        (issue) => `${issue.path.join(".") || "data"}: ${issue.message}`,
      );
      throw new UnrecoverableError(`invalid job data: ${issues.join("; ")}`);
    }
    const startedAt = performance.now();
    const controller = new AbortController();
    let abandon = (): void => {};
    const abandoned = new Promise<never>((_, reject) => {
      abandon = () => reject(controller.signal.reason as Error);
    });
    abandoned.catch(() => {});
    this.running.set(jobId, { controller, abandon, startedAt });
    const work = this.options.process({
      data: parsed.data,
      attempt: job.attemptsMade + 1,
      maxAttempts: job.opts.attempts ?? 1,
      jobId,
      signal: controller.signal,
    });
    try {
      const result = await Promise.race([work, abandoned]);
      this.closeBreaker("none");
      return result;
    } catch (err) {
      if (controller.signal.reason instanceof WorkerClosingError) {
        // Interrupted by shutdown, not failed: hand the job back without spending an attempt.
        work.catch(() => {});
        await job.moveToWait(token);
        throw new WaitingError();
      }
      const outage = outageOf(err);
      if (outage !== undefined && this.worker) {
        // A dependency is down: the breaker pauses the whole queue (every worker shares the dependency) and
        // the job goes back to waiting with its attempts untouched. A job that began before the last pause
        // failed in the outage that pause answers: it is not counted again. Only a job started after it (a
        // probe) that fails lengthens the next pause.
        if (startedAt < this.pausedAt && performance.now() < this.pausedUntil) {
          // The queue's limiter key (shared by the fleet) already holds the pause, maybe a longer one set by
          // another worker: BullMQ moves the job back to waiting for what is left of it.
          throw Worker.RateLimitError();
        }
        const pauseMs = this.nextOutagePause();
        this.pausedAt = performance.now();
        this.pausedUntil = this.pausedAt + pauseMs;
        this.pausedFor = outage;
        this.closeIfUnprobed(this.pausedAt, pauseMs + UNPROBED_CLOSE_AFTER_MS);
        this.options.onOutage?.({ outage, pauseMs, error: err });
        await this.worker.rateLimit(pauseMs);
        throw Worker.RateLimitError();
      }
      throw isRetryable(err) ? err : unrecoverable(err);
    } finally {
      this.running.delete(jobId);
    }
  }

  /** Closes an open breaker (forgetting its pauses) and says so; `outage` is `none` when a job got through. */
  private closeBreaker(outage: string): void {
    if (this.outages === 0) return;
    this.outages = 0;
    this.pausedAt = Number.NEGATIVE_INFINITY;
    clearTimeout(this.unprobedTimer);
    this.options.onOutage?.({ outage, pauseMs: 0, error: undefined });
  }

  /**
   * In `delayMs`, closes the breaker opened at `pausedAt` unless it was opened again or closed meanwhile, or
   * a job that started after the pause still runs (its outcome decides; looked at again later). Without
   * this, an open breaker over an empty queue would stay open until some job came and succeeded.
   */
  private closeIfUnprobed(pausedAt: number, delayMs: number): void {
    clearTimeout(this.unprobedTimer);
    this.unprobedTimer = setTimeout(() => {
      if (this.closing || this.outages === 0 || this.pausedAt !== pausedAt) return;
      const probing = [...this.running.values()].some((job) => job.startedAt >= this.pausedUntil);
      if (probing) this.closeIfUnprobed(pausedAt, UNPROBED_CLOSE_AFTER_MS);
      else this.closeBreaker(this.pausedFor);
    }, delayMs);
    this.unprobedTimer.unref();
  }

  private nextOutagePause(): number {
    const min = this.options.minOutagePauseMs ?? 1_000;
    const max = this.options.maxOutagePauseMs ?? 30_000;
    const pause = Math.min(max, min * 2 ** Math.min(this.outages, 20));
    this.outages += 1;
    // Jitter, so that workers paused together do not come back together.
    return Math.round(pause * (0.8 + Math.random() * 0.4));
  }
}

/** Resolves whether `promise` settled within `ms`. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([
      promise.then(
        () => true,
        () => true,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Wraps a permanent error so BullMQ fails the job at once; the message keeps the error's type. */
function unrecoverable(err: unknown): UnrecoverableError {
  const wrapped = new UnrecoverableError(`${errorType(err)}: ${errorMessage(err)}`);
  wrapped.cause = err;
  if (err instanceof Error && err.stack) wrapped.stack = err.stack;
  return wrapped;
}

function defaultOnError(queueName: string): (err: unknown) => void {
  const logger = createLogger({ name: queueName });
  return (err) => logger.error({ err, errorType: errorType(err) }, "queue worker error");
}
