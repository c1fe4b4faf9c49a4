import { DISCOVER_QUEUE, DiscoverJobData, type QueueConnectionOptions } from "./job-catalog.ts";
import { JobRunner, type CloseOptions } from "./job-runner.ts";

/** What a discovery processor is told besides the payload. */
export interface DiscoverJobContext {
  jobId: string;
  /** This attempt, 1-based. */
  attempt: number;
  /** Aborted on a timed-out close or a lost lock. */
  signal: AbortSignal;
}

export interface DiscoveryWorkerOptions extends QueueConnectionOptions {
  /** Discoveries this process runs at once. Default 1. */
  concurrency?: number;
  /** Lists an ingestion's source and registers new files. Errors with `retryable: false` are not retried. */
  process: (data: DiscoverJobData, context: DiscoverJobContext) => Promise<void>;
  /** Called with worker-level errors (Redis connection, lock renewal). Default: logged. */
  onError?: (err: unknown) => void;
}

/**
 * Consumer side of the discovery queue. Any number of discoverer processes may run: BullMQ hands each
 * scheduled firing and each manual request to exactly one of them.
 */
export class DiscoveryWorker {
  private readonly runner: JobRunner<DiscoverJobData>;

  constructor(options: DiscoveryWorkerOptions) {
    const { process, ...connection } = options;
    this.runner = new JobRunner({
      ...connection,
      concurrency: options.concurrency ?? 1,
      queueName: DISCOVER_QUEUE,
      schema: DiscoverJobData,
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
