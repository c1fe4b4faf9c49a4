import type { JobsOptions } from "bullmq";
import { CronQueue, checkIngestionId } from "./cron-queue.ts";
import {
  DISCOVER_JOB_NAME,
  DISCOVER_QUEUE,
  DISCOVER_RETRY,
  type DiscoverJobData,
  type QueueConnectionOptions,
} from "./job-catalog.ts";

const SCHEDULER_ID_PREFIX = "ingestion-";

const DISCOVER_JOB_OPTIONS = {
  attempts: DISCOVER_RETRY.attempts,
  backoff: { type: "exponential", delay: DISCOVER_RETRY.backoffMs },
  removeOnComplete: { count: 100 },
  removeOnFail: { count: 1_000 },
} satisfies JobsOptions;

/** An ingestion's discovery schedule as Redis holds it. */
export interface DiscoverySchedule {
  ingestionId: number;
  /** The cron pattern (UTC; five fields, or six with seconds first). */
  cron: string;
  /** When it fires next, if known. */
  next: Date | null;
}

/** Producer side of the discovery queue: cron schedules per ingestion, and manual requests. */
export class DiscoveryQueue extends CronQueue<DiscoverJobData> {
  constructor(options: QueueConnectionOptions) {
    super(DISCOVER_QUEUE, options);
  }

  /**
   * Creates or replaces the ingestion's discovery schedule (`cron` in UTC), or removes it when `cron` is
   * null. However many processes call this, one scheduler exists per ingestion.
   *
   * @throws InvalidInputError when `ingestionId` is not a positive integer or `cron` does not parse.
   */
  async setSchedule(ingestionId: number, cron: string | null): Promise<void> {
    checkIngestionId(ingestionId);
    await this.writeScheduler(`${SCHEDULER_ID_PREFIX}${ingestionId}`, cron, {
      name: DISCOVER_JOB_NAME,
      data: { ingestionId, trigger: "schedule" },
      opts: DISCOVER_JOB_OPTIONS,
    });
  }

  /** Every ingestion's schedule, in ingestion id order. */
  async schedules(): Promise<DiscoverySchedule[]> {
    // BullMQ orders schedulers by their next firing, which ties whenever two fire together: sort by id.
    return (await this.readSchedulers())
      .flatMap(({ id, cron, next }) => {
        const ingestionId = Number(id.slice(SCHEDULER_ID_PREFIX.length));
        return id.startsWith(SCHEDULER_ID_PREFIX) && Number.isInteger(ingestionId)
          ? [{ ingestionId, cron, next }]
          : [];
      })
      .sort((a, b) => a.ingestionId - b.ingestionId);
  }

  /**
   * Asks for one discovery of the ingestion now. Requests made while one is already waiting are merged
   * into it; a request made while one is running queues exactly one more, since files may have landed
   * after the running listing began.
   *
   * @throws InvalidInputError when `ingestionId` is not a positive integer.
   */
  async requestDiscovery(ingestionId: number): Promise<void> {
    checkIngestionId(ingestionId);
    await this.request(`manual-${SCHEDULER_ID_PREFIX}${ingestionId}`, {
      name: DISCOVER_JOB_NAME,
      data: { ingestionId, trigger: "manual" },
      opts: DISCOVER_JOB_OPTIONS,
    });
  }
}
