import { MAINTAIN_QUEUE, MaintainJobData, type QueueConnectionOptions } from "./job-catalog.ts";
import { JobRunner, type CloseOptions } from "./job-runner.ts";

/** What a maintenance processor is told besides the payload. */
export interface MaintainJobContext {
  jobId: string;
  /** This attempt, 1-based. */
  attempt: number;
  /** Aborted on a timed-out close or a lost lock. */
  signal: AbortSignal;
}

export interface MaintenanceWorkerOptions extends QueueConnectionOptions {
  /** Maintenance runs this process runs at once. Default 1 (each holds a table's write lease). */
  concurrency?: number;
  /** Runs one task on one table. Errors with `retryable: false` are not retried. */
  process: (data: MaintainJobData, context: MaintainJobContext) => Promise<void>;
  /** Called with worker-level errors (Redis connection, lock renewal). Default: logged. */
  onError?: (err: unknown) => void;
}

/** Consumer side of the maintenance queue: each firing goes to one process. */
export class MaintenanceWorker {
  private readonly runner: JobRunner<MaintainJobData>;

  constructor(options: MaintenanceWorkerOptions) {
    const { process, ...connection } = options;
    this.runner = new JobRunner({
      ...connection,
      concurrency: options.concurrency ?? 1,
      queueName: MAINTAIN_QUEUE,
      schema: MaintainJobData,
      process: ({ data, jobId, attempt, signal }) => process(data, { jobId, attempt, signal }),
    });
  }

  /** Connects and starts taking jobs; resolves once connected. */
  async start(): Promise<void> {
    await this.runner.start();
  }

  /** Stops taking jobs, waits for running ones up to `timeoutMs` (default 30 s), then aborts and closes. */
  async close(options?: CloseOptions): Promise<void> {
    await this.runner.close(options);
  }
}
