import { LakeferryError } from "@lakeferry/core";

/**
 * Thrown by a job processor to say the job cannot succeed however often it is tried (the worker would
 * stop retrying any error whose `retryable` is false; this class is a convenience for that).
 */
export class PermanentJobError extends LakeferryError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super("PERMANENT_JOB_ERROR", message, { retryable: false, cause: options.cause });
  }
}

/**
 * The `signal.reason` a processor sees when its worker is closing and the close timeout ran out. The job
 * goes back to the waiting list without spending an attempt.
 */
export class WorkerClosingError extends LakeferryError {
  constructor(timeoutMs: number) {
    super("WORKER_CLOSING", `the worker is closing and its ${timeoutMs} ms shutdown timeout ran out`, {
      retryable: true,
    });
  }
}

/**
 * The `signal.reason` a processor sees when its worker could not renew the job's lock: BullMQ may already
 * have handed the job to another worker, so this attempt should stop.
 */
export class JobLockLostError extends LakeferryError {
  /** The BullMQ job id. */
  readonly jobId: string;

  constructor(jobId: string) {
    super("JOB_LOCK_LOST", `lost the lock of job ${jobId}; another worker may run it`, { retryable: true });
    this.jobId = jobId;
  }
}
