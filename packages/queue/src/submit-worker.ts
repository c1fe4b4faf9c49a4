import { SUBMIT_JOB_NAME, SUBMIT_QUEUE, SubmitJobData, type QueueConnectionOptions } from "./job-catalog.ts";
import { JobRunner, type CloseOptions, type OutageEvent } from "./job-runner.ts";

export interface SubmitWorkerOptions extends QueueConnectionOptions {
  /** Submissions this process registers at once. Default 8 (bench:submit: 2 left the queue at a fifth of raw BullMQ; registering waits on Postgres and Redis, not CPU). */
  concurrency?: number;
  /**
   * Registers and enqueues a submission's paths; what it resolves to becomes the job's return value, which
   * the producer may read. Errors with `retryable: false` (an unknown ingestion) fail the job for good.
   */
  process: (data: SubmitJobData, context: { jobId: string; signal: AbortSignal }) => Promise<unknown>;
  onError?: (err: unknown) => void;
  /**
   * A dependency is down (a submission failed with an error carrying an `outage`: Postgres, Redis or the
   * source's storage): the submit queue pauses for `pauseMs` (doubling while it lasts, with jitter, up to
   * `maxOutagePauseMs`) and the job waits again without spending an attempt. Called with `pauseMs` 0 when
   * the pause is over (see the ingest worker's breaker, which works the same). Default: nothing.
   */
  onOutage?: (event: OutageEvent) => void;
  /** First pause of the queue after an outage, in ms. Default 1 000. */
  minOutagePauseMs?: number;
  /** Longest pause, in ms. Default 30 000. */
  maxOutagePauseMs?: number;
}

/**
 * Consumer side of {@link SUBMIT_QUEUE}. Jobs come from producers lakeferry does not know: a job whose name
 * is not {@link SUBMIT_JOB_NAME} or whose payload does not parse fails at once, with the reason as its
 * failure (visible in Bull Board and to the producer), and is never retried.
 */
export class SubmitWorker {
  readonly #runner: JobRunner<SubmitJobData>;

  constructor(options: SubmitWorkerOptions) {
    const { process, ...connection } = options;
    this.#runner = new JobRunner({
      ...connection,
      concurrency: options.concurrency ?? 8,
      queueName: SUBMIT_QUEUE,
      schema: SubmitJobData,
      process: ({ data, jobId, signal }) => process(data, { jobId, signal }),
      jobName: SUBMIT_JOB_NAME,
    });
  }

  async start(): Promise<void> {
    await this.#runner.start();
  }

  async close(options?: CloseOptions): Promise<void> {
    await this.#runner.close(options);
  }
}
