import { INGEST_QUEUE, IngestJobData, type QueueConnectionOptions } from "./job-catalog.ts";
import { JobRunner, type CloseOptions, type JobContext } from "./job-runner.ts";

/** What an ingest processor is told about its job. `signal` is aborted on a timed-out close or a lost lock. */
export type IngestJobContext = JobContext<IngestJobData>;

export interface IngestWorkerOptions extends QueueConnectionOptions {
  /** Jobs this process runs at once. */
  concurrency: number;
  /**
   * Runs one job. Resolve when done; throw to fail the attempt. An error whose `retryable` is false
   * (see `isRetryable` in @lakeferry/core) fails the job at once; an error with an `outage` pauses the
   * queue and returns the job to waiting without spending an attempt; any other error is retried with the
   * job's exponential backoff until its attempts run out.
   */
  process: (job: IngestJobContext) => Promise<void>;
  /**
   * How long a job's lock lasts in ms; the worker renews it at half that while the job runs. A job whose
   * worker died is taken over after this long. Default BullMQ's 30 000.
   */
  lockDurationMs?: number;
  /** Called with worker-level errors (Redis connection, lock renewal). Default: logged. */
  onError?: (err: unknown) => void;
  /**
   * A dependency is down (a job failed with an error carrying an `outage`): the ingest queue pauses for
   * `pauseMs` (doubling while it lasts, with jitter, up to 30 s) and the job waits again without spending an
   * attempt. Called with `pauseMs` 0 once a job succeeds again. Default: nothing.
   */
  onOutage?: (event: { outage: string; pauseMs: number; error: unknown }) => void;
  /** First pause of the queue after an outage, in ms. Default 1 000. */
  minOutagePauseMs?: number;
  /** Longest pause, in ms. Default 30 000. */
  maxOutagePauseMs?: number;
}

/** Consumer side of the ingest queue. */
export class IngestWorker {
  private readonly runner: JobRunner<IngestJobData>;

  constructor(options: IngestWorkerOptions) {
    this.runner = new JobRunner({ ...options, queueName: INGEST_QUEUE, schema: IngestJobData });
  }

  /** Connects and starts taking jobs; resolves once connected. */
  async start(): Promise<void> {
    await this.runner.start();
  }

  /**
   * Stops taking jobs, waits for running ones up to `timeoutMs` (default 30 s), then aborts their signals
   * and closes; interrupted jobs go back to waiting without spending an attempt.
   */
  async close(options?: CloseOptions): Promise<void> {
    await this.runner.close(options);
  }
}
