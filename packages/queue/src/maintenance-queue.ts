import { InvalidInputError, errorMessage } from "@lakeferry/core";
import { Queue, type JobsOptions } from "bullmq";
import type { Redis } from "ioredis";
import {
  DEFAULT_PREFIX,
  MAINTAIN_JOB_NAME,
  MAINTAIN_QUEUE,
  MAINTAIN_RETRY,
  type MaintainJobData,
  type QueueConnectionOptions,
} from "./job-catalog.ts";
import { redisConnection } from "./redis-connection.ts";

/** Cron patterns are read in this time zone, whatever the servers' own (as discovery's). */
const SCHEDULE_TIME_ZONE = "UTC";

const SCHEDULER_ID_PREFIX = "maintain-";

const MAINTAIN_JOB_OPTIONS = {
  attempts: MAINTAIN_RETRY.attempts,
  backoff: { type: "exponential", delay: MAINTAIN_RETRY.backoffMs },
  removeOnComplete: { count: 100 },
  removeOnFail: { count: 1_000 },
} satisfies JobsOptions;

export type MaintenanceTaskName = MaintainJobData["task"];

/** One maintenance task's schedule of one ingestion, as Redis holds it. */
export interface MaintenanceSchedule {
  ingestionId: number;
  task: MaintenanceTaskName;
  /** The cron pattern (UTC). */
  cron: string;
}

/** Producer side of the maintenance queue: a cron schedule per ingestion and task, and requests to run now. */
export class MaintenanceQueue {
  private readonly redis: Redis;
  private readonly queue: Queue<MaintainJobData>;

  constructor(options: QueueConnectionOptions) {
    this.redis = redisConnection(options.redisUrl);
    this.queue = new Queue<MaintainJobData>(MAINTAIN_QUEUE, {
      connection: this.redis,
      prefix: options.prefix ?? DEFAULT_PREFIX,
    });
    this.queue.on("error", () => {});
  }

  /**
   * Creates or replaces the schedule of `task` on the ingestion's table (`cron` in UTC), or removes it when
   * `cron` is null. One scheduler per ingestion and task, however many processes call this.
   *
   * @throws InvalidInputError when `ingestionId` is not a positive integer or `cron` does not parse.
   */
  async setSchedule(ingestionId: number, task: MaintenanceTaskName, cron: string | null): Promise<void> {
    checkIngestionId(ingestionId);
    const schedulerId = `${SCHEDULER_ID_PREFIX}${ingestionId}-${task}`;
    if (cron === null) {
      await this.queue.removeJobScheduler(schedulerId);
      return;
    }
    try {
      await this.queue.upsertJobScheduler(
        schedulerId,
        { pattern: cron, tz: SCHEDULE_TIME_ZONE },
        {
          name: MAINTAIN_JOB_NAME,
          data: { ingestionId, task, trigger: "schedule" },
          opts: MAINTAIN_JOB_OPTIONS,
        },
      );
    } catch (err) {
      if (err instanceof Error && /cron|pattern|invalid|range|fields/i.test(err.message)) {
        throw new InvalidInputError("cron", `"${cron}" is not a cron pattern: ${errorMessage(err)}`);
      }
      throw err;
    }
  }

  /** Every maintenance schedule, by ingestion id then task. */
  async schedules(): Promise<MaintenanceSchedule[]> {
    const schedulers = await this.queue.getJobSchedulers(0, -1, true);
    return schedulers
      .flatMap((scheduler) => {
        const id = scheduler.id ?? scheduler.key;
        const match = /^maintain-(\d+)-(expireSnapshots|compaction|rewriteManifests|cleanSource)$/.exec(id);
        if (!match || !scheduler.pattern) return [];
        return [
          {
            ingestionId: Number(match[1]),
            task: match[2] as MaintenanceTaskName,
            cron: scheduler.pattern,
          },
        ];
      })
      .sort((a, b) => a.ingestionId - b.ingestionId || a.task.localeCompare(b.task));
  }

  /**
   * Asks for one run of `task` on the ingestion's table now; a request made while one waits is merged into it.
   * @throws InvalidInputError when `ingestionId` is not a positive integer.
   */
  async requestMaintenance(ingestionId: number, task: MaintenanceTaskName): Promise<void> {
    checkIngestionId(ingestionId);
    await this.queue.add(
      MAINTAIN_JOB_NAME,
      { ingestionId, task, trigger: "manual" },
      {
        ...MAINTAIN_JOB_OPTIONS,
        deduplication: { id: `manual-${SCHEDULER_ID_PREFIX}${ingestionId}-${task}` },
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
