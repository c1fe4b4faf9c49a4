import { InvalidInputError, errorMessage } from "@lakeferry/core";
import { Queue, type JobsOptions } from "bullmq";
import type { RedisConnection } from "./redis-connection.ts";
import { DEFAULT_PREFIX, type QueueConnectionOptions } from "./job-catalog.ts";
import { redisConnection } from "./redis-connection.ts";

/** Cron patterns are read in this time zone, whatever the servers' own. */
const SCHEDULE_TIME_ZONE = "UTC";

/** A job scheduler as Redis holds it. */
export interface StoredScheduler {
  id: string;
  /** The cron pattern (UTC). */
  cron: string;
  /** When it fires next, if known. */
  next: Date | null;
}

/**
 * The producer side shared by the queues whose jobs run on cron schedules (discovery, maintenance): one
 * BullMQ job scheduler per id, however many processes write it, and requests to run now.
 */
export class CronQueue<Data> {
  protected readonly redis: RedisConnection;
  protected readonly queue: Queue<Data>;

  constructor(name: string, options: QueueConnectionOptions) {
    this.redis = redisConnection(options.redisUrl);
    this.queue = new Queue<Data>(name, { connection: this.redis, prefix: options.prefix ?? DEFAULT_PREFIX });
    this.queue.on("error", () => {});
  }

  /**
   * Creates or replaces scheduler `id` (`cron` in UTC) adding `job` at each firing, or removes it when `cron`
   * is null.
   * @throws InvalidInputError when `cron` does not parse (checked before Redis is touched).
   */
  protected async writeScheduler(
    id: string,
    cron: string | null,
    job: { name: string; data: Data; opts: JobsOptions },
  ): Promise<void> {
    if (cron === null) {
      await this.queue.removeJobScheduler(id);
      return;
    }
    try {
      // BullMQ's job types are generic over name and data in a way a generic Data cannot satisfy here.
      await (this.queue as Queue).upsertJobScheduler(id, { pattern: cron, tz: SCHEDULE_TIME_ZONE }, job);
    } catch (err) {
      if (isCronError(err)) {
        throw new InvalidInputError("cron", `"${cron}" is not a cron pattern: ${errorMessage(err)}`);
      }
      throw err;
    }
  }

  /** Every scheduler of this queue. */
  protected async readSchedulers(): Promise<StoredScheduler[]> {
    const schedulers = await this.queue.getJobSchedulers(0, -1, true);
    return schedulers.flatMap((scheduler) =>
      scheduler.pattern
        ? [
            {
              id: scheduler.id ?? scheduler.key,
              cron: scheduler.pattern,
              next: scheduler.next ? new Date(scheduler.next) : null,
            },
          ]
        : [],
    );
  }

  /**
   * Adds one run now. Requests made while one waits are merged into it; a request made while one is
   * running queues exactly one more (what it asks for may have changed after the running one began).
   */
  protected async request(
    dedupId: string,
    job: { name: string; data: Data; opts: JobsOptions },
  ): Promise<void> {
    await (this.queue as Queue).add(job.name, job.data, {
      ...job.opts,
      deduplication: { id: dedupId, keepLastIfActive: true },
    });
  }

  /** Closes the queue and its Redis connection. Schedules stay in Redis. */
  async close(): Promise<void> {
    await this.queue.close();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

export function checkIngestionId(ingestionId: number): void {
  if (!Number.isInteger(ingestionId) || ingestionId < 1) {
    throw new InvalidInputError("ingestionId", `must be a positive integer, got ${ingestionId}`);
  }
}

/** The pattern is parsed (by BullMQ's cron parser) before Redis is touched; these are its complaints. */
function isCronError(err: unknown): boolean {
  return (
    err instanceof Error &&
    /cron|pattern|invalid|validation|constraint|alias|expected range|out of range|fields/i.test(err.message)
  );
}
