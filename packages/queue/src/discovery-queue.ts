import { InvalidInputError, errorMessage } from "@lakeferry/core";
import { Queue, type JobsOptions } from "bullmq";
import type { Redis } from "ioredis";
import {
  DEFAULT_PREFIX,
  DISCOVER_JOB_NAME,
  DISCOVER_QUEUE,
  DISCOVER_RETRY,
  type DiscoverJobData,
  type QueueConnectionOptions,
} from "./job-catalog.ts";
import { redisConnection } from "./redis-connection.ts";

/** Cron patterns are read in this time zone, whatever the servers' own. */
const SCHEDULE_TIME_ZONE = "UTC";

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
export class DiscoveryQueue {
  private readonly redis: Redis;
  private readonly queue: Queue<DiscoverJobData>;

  constructor(options: QueueConnectionOptions) {
    this.redis = redisConnection(options.redisUrl);
    this.queue = new Queue<DiscoverJobData>(DISCOVER_QUEUE, {
      connection: this.redis,
      prefix: options.prefix ?? DEFAULT_PREFIX,
    });
    this.queue.on("error", () => {});
  }

  /**
   * Creates or replaces the ingestion's discovery schedule (`cron` in UTC), or removes it when `cron` is
   * null. However many processes call this, one scheduler exists per ingestion.
   *
   * @throws InvalidInputError when `ingestionId` is not a positive integer or `cron` does not parse.
   */
  async setSchedule(ingestionId: number, cron: string | null): Promise<void> {
    checkIngestionId(ingestionId);
    const schedulerId = `${SCHEDULER_ID_PREFIX}${ingestionId}`;
    if (cron === null) {
      await this.queue.removeJobScheduler(schedulerId);
      return;
    }
    try {
      await this.queue.upsertJobScheduler(
        schedulerId,
        { pattern: cron, tz: SCHEDULE_TIME_ZONE },
        { name: DISCOVER_JOB_NAME, data: { ingestionId, trigger: "schedule" }, opts: DISCOVER_JOB_OPTIONS },
      );
    } catch (err) {
      if (isCronError(err))
        throw new InvalidInputError("cron", `"${cron}" is not a cron pattern: ${errorMessage(err)}`);
      throw err;
    }
  }

  /** Every ingestion's schedule, in ingestion id order. */
  async schedules(): Promise<DiscoverySchedule[]> {
    const schedulers = await this.queue.getJobSchedulers(0, -1, true);
    // BullMQ orders schedulers by their next firing, which ties whenever two fire together: sort by id.
    return schedulers
      .flatMap((scheduler) => {
        const id = scheduler.id ?? scheduler.key;
        const ingestionId = Number(id.slice(SCHEDULER_ID_PREFIX.length));
        if (!id.startsWith(SCHEDULER_ID_PREFIX) || !Number.isInteger(ingestionId) || !scheduler.pattern)
          return [];
        return [
          { ingestionId, cron: scheduler.pattern, next: scheduler.next ? new Date(scheduler.next) : null },
        ];
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
    await this.queue.add(
      DISCOVER_JOB_NAME,
      { ingestionId, trigger: "manual" },
      {
        ...DISCOVER_JOB_OPTIONS,
        deduplication: { id: `manual-${SCHEDULER_ID_PREFIX}${ingestionId}`, keepLastIfActive: true },
      },
    );
  }

  /** Closes the queue and its Redis connection. Schedules stay in Redis. */
  async close(): Promise<void> {
    await this.queue.close();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

function checkIngestionId(ingestionId: number): void {
  if (!Number.isInteger(ingestionId) || ingestionId < 1) {
    throw new InvalidInputError("ingestionId", `must be a positive integer, got ${ingestionId}`);
  }
}

/** The pattern is parsed (by BullMQ's cron parser) before Redis is touched; these are its complaints. */
function isCronError(err: unknown): boolean {
  return (
    err instanceof Error &&
    /cron|pattern|invalid|validation|constraint|expected range|out of range|fields/i.test(err.message)
  );
}
