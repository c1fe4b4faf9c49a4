import type { Queue } from "bullmq";
import type { AllQueues } from "./all-queues.ts";

/** One queue's backlog, as read at one moment. */
export interface QueueStats {
  /** The queue's name (`lakeferry-ingest`, …). */
  queue: string;
  /** Jobs waiting to be taken (prioritized ones included). */
  waiting: number;
  /** Jobs waiting for their backoff or delay to pass. */
  delayed: number;
  /** Jobs being worked on. */
  active: number;
  /**
   * Age of the oldest waiting job in seconds (from when the job was added, so a job retried or moved back
   * after an outage counts from its first add); 0 when none waits.
   */
  oldestWaitingSeconds: number;
}

/** Reads every queue's backlog (see {@link QueueStats}) through BullMQ's own API. */
export async function queueStats(queues: AllQueues, now: number = Date.now()): Promise<QueueStats[]> {
  return Promise.all(queues.queues.map((queue) => statsOf(queue, now)));
}

async function statsOf(queue: Queue, now: number): Promise<QueueStats> {
  const [counts, oldest] = await Promise.all([
    queue.getJobCounts("waiting", "prioritized", "delayed", "active"),
    // The wait list grows at its head: ascending order starts from its oldest job.
    queue.getJobs(["waiting"], 0, 0, true),
  ]);
  const timestamp = oldest[0]?.timestamp;
  return {
    queue: queue.name,
    waiting: (counts.waiting ?? 0) + (counts.prioritized ?? 0),
    delayed: counts.delayed ?? 0,
    active: counts.active ?? 0,
    oldestWaitingSeconds: timestamp === undefined ? 0 : Math.max(0, (now - timestamp) / 1000),
  };
}
