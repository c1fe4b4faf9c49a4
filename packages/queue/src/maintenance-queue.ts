import type { JobsOptions } from "bullmq";
import { CronQueue, checkIngestionId } from "./cron-queue.ts";
import {
  MAINTAIN_JOB_NAME,
  MAINTAIN_QUEUE,
  MAINTAIN_RETRY,
  type MaintainJobData,
  type QueueConnectionOptions,
} from "./job-catalog.ts";

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
export class MaintenanceQueue extends CronQueue<MaintainJobData> {
  constructor(options: QueueConnectionOptions) {
    super(MAINTAIN_QUEUE, options);
  }

  /**
   * Creates or replaces the schedule of `task` on the ingestion's table (`cron` in UTC), or removes it when
   * `cron` is null. One scheduler per ingestion and task, however many processes call this.
   *
   * @throws InvalidInputError when `ingestionId` is not a positive integer or `cron` does not parse.
   */
  async setSchedule(ingestionId: number, task: MaintenanceTaskName, cron: string | null): Promise<void> {
    checkIngestionId(ingestionId);
    await this.writeScheduler(`${SCHEDULER_ID_PREFIX}${ingestionId}-${task}`, cron, {
      name: MAINTAIN_JOB_NAME,
      data: { ingestionId, task, trigger: "schedule" },
      opts: MAINTAIN_JOB_OPTIONS,
    });
  }

  /** Every maintenance schedule, by ingestion id then task. */
  async schedules(): Promise<MaintenanceSchedule[]> {
    return (await this.readSchedulers())
      .flatMap(({ id, cron }) => {
        const match = /^maintain-(\d+)-(expireSnapshots|compaction|rewriteManifests)$/.exec(id);
        return match ? [{ ingestionId: Number(match[1]), task: match[2] as MaintenanceTaskName, cron }] : [];
      })
      .sort((a, b) => a.ingestionId - b.ingestionId || a.task.localeCompare(b.task));
  }

  /**
   * Asks for one run of `task` on the ingestion's table now. A request made while one waits is merged into
   * it; one made while the task runs queues exactly one more.
   * @throws InvalidInputError when `ingestionId` is not a positive integer.
   */
  async requestMaintenance(ingestionId: number, task: MaintenanceTaskName): Promise<void> {
    checkIngestionId(ingestionId);
    await this.request(`manual-${SCHEDULER_ID_PREFIX}${ingestionId}-${task}`, {
      name: MAINTAIN_JOB_NAME,
      data: { ingestionId, task, trigger: "manual" },
      opts: MAINTAIN_JOB_OPTIONS,
    });
  }
}
