import { InvalidInputError } from "@lakeferry/core";
import { Queue } from "bullmq";
import { randomBytes } from "node:crypto";
import type { RedisConnection } from "./redis-connection.ts";
import {
  DEFAULT_PREFIX,
  INGEST_JOB_NAME,
  INGEST_QUEUE,
  IngestJobData,
  KEEP_COMPLETED,
  KEEP_FAILED,
  ingestJobId,
  type QueueConnectionOptions,
  type RetryPolicy,
} from "./job-catalog.ts";
import { clearFinishedJobs, liveJobs, type QueueKeyLayout } from "./job-scripts.ts";
import { redisConnection } from "./redis-connection.ts";

/** Jobs added (and ids checked) per Redis round trip. */
const CHUNK_SIZE = 500;

/** The job states `counts()` reports. */
const COUNTED_STATES = ["waiting", "active", "delayed", "completed", "failed"] as const;

/** Producer side of the ingest queue: one BullMQ job per file version. */
export class IngestQueue {
  private readonly redis: RedisConnection;
  private readonly queue: Queue<IngestJobData>;
  private readonly keys: QueueKeyLayout;
  private readonly epochKey: string;

  constructor(options: QueueConnectionOptions) {
    this.redis = redisConnection(options.redisUrl);
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    this.queue = new Queue<IngestJobData>(INGEST_QUEUE, { connection: this.redis, prefix });
    // Our own key beside BullMQ's (outside any queue's key space): it goes when Redis loses its data.
    this.epochKey = `${prefix}:lakeferry-epoch`;
    // An unhandled 'error' event would crash the process; connection errors surface on the calls instead.
    this.queue.on("error", () => {});
    this.keys = {
      completed: this.queue.toKey("completed"),
      failed: this.queue.toKey("failed"),
      jobKeyBase: this.queue.toKey(""),
    };
  }

  /**
   * Adds one job per file version, in chunks of {@link CHUNK_SIZE}. A version that already has a live job
   * (waiting, delayed, active) is skipped; one whose job finished (completed or failed) gets a fresh job, so
   * a retried or reset file runs again.
   *
   * With `firstJobs`, every version was registered just now by the caller, so none can have had a job: the
   * look for finished ones (a script over every id, as costly in Redis as the add) is skipped. Should one
   * exist all the same (a Postgres restored from a backup or a promoted replica, or a schema dropped, under the
   * same Redis prefix), its file stays PENDING until the
   * reconciler, which enqueues without this option, finds it has no live job.
   *
   * @returns how many jobs were added. Two producers racing on the same id may both count it; only one
   *   job is created.
   * @throws InvalidInputError when a payload or retry policy is malformed (nothing is enqueued then).
   */
  async enqueue(
    jobs: { data: IngestJobData; retry: RetryPolicy }[],
    options: { firstJobs?: boolean } = {},
  ): Promise<number> {
    const prepared = jobs.map((job, index) => {
      const data = parseData(job.data, index);
      return { id: ingestJobId(data), data, retry: parseRetry(job.retry, index) };
    });
    let added = 0;
    for (let start = 0; start < prepared.length; start += CHUNK_SIZE) {
      const chunk = uniqueById(prepared.slice(start, start + CHUNK_SIZE));
      const states = options.firstJobs
        ? []
        : await clearFinishedJobs(
            this.redis,
            this.keys,
            chunk.map((job) => job.id),
          );
      const fresh = chunk.filter((_, index) => states[index] !== "live");
      if (fresh.length === 0) continue;
      await this.queue.addBulk(
        fresh.map((job) => ({
          name: INGEST_JOB_NAME,
          data: job.data,
          opts: {
            jobId: job.id,
            attempts: job.retry.attempts,
            backoff: { type: "exponential", delay: job.retry.backoffMs },
            removeOnComplete: KEEP_COMPLETED,
            removeOnFail: KEEP_FAILED,
          },
        })),
      );
      added += fresh.length;
    }
    return added;
  }

  /**
   * Which of `ids` are held by a job that has not finished (waiting, delayed, prioritized or active).
   * The reconciler re-enqueues PENDING files whose id is missing here.
   */
  async liveJobIds(ids: string[]): Promise<Set<string>> {
    const live = new Set<string>();
    for (let start = 0; start < ids.length; start += CHUNK_SIZE) {
      const chunk = ids.slice(start, start + CHUNK_SIZE);
      const flags = await liveJobs(this.redis, this.keys, chunk);
      chunk.forEach((id, index) => {
        if (flags[index]) live.add(id);
      });
    }
    return live;
  }

  /**
   * The Redis epoch: an id kept in the marker key `<prefix>:lakeferry-epoch`, created when missing (then
   * `created` is true). The id stays the same for as long as Redis keeps its data; a new one means Redis
   * lost everything under the prefix since the id was last read (FLUSHALL, a restart without persistence,
   * a failover to an empty replica), and with it jobs that Postgres still counts on. The reconciler reads
   * it each pass and sweeps every PENDING file when it changed.
   */
  async redisEpoch(): Promise<{ epoch: string; created: boolean }> {
    for (;;) {
      const existing = await this.redis.get(this.epochKey);
      if (existing !== null) return { epoch: existing, created: false };
      const fresh = `${new Date().toISOString()}/${randomBytes(6).toString("hex")}`;
      // NX: of several processes finding the key missing, one creates it and the others read its id.
      if ((await this.redis.set(this.epochKey, fresh, "NX")) === "OK") return { epoch: fresh, created: true };
    }
  }

  /** Number of jobs per state: `waiting`, `active`, `delayed`, `completed`, `failed`. */
  async counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts(...COUNTED_STATES);
  }

  /**
   * How long the queue stays paused by the workers' outage breaker (a dependency was down), in ms; 0 when
   * it is not paused.
   */
  async pausedForMs(): Promise<number> {
    return Math.max(0, await this.queue.getRateLimitTtl());
  }

  /** Deletes the queue and every job in it, active ones included. For tests and operators. */
  async drainAll(): Promise<void> {
    await this.queue.obliterate({ force: true });
  }

  /** Closes the queue and its Redis connection. */
  async close(): Promise<void> {
    await this.queue.close();
    await this.redis.quit().catch(() => this.redis.disconnect());
  }
}

function parseData(data: unknown, index: number): IngestJobData {
  const parsed = IngestJobData.safeParse(data);
  if (!parsed.success) {
    throw new InvalidInputError(`jobs[${index}].data`, parsed.error.issues.map(describeIssue).join("; "));
  }
  return parsed.data;
}

function parseRetry(retry: RetryPolicy, index: number): RetryPolicy {
  if (!Number.isInteger(retry.attempts) || retry.attempts < 1) {
    throw new InvalidInputError(
      `jobs[${index}].retry.attempts`,
      `must be an integer ≥ 1, got ${retry.attempts}`,
    );
  }
  if (!Number.isFinite(retry.backoffMs) || retry.backoffMs < 0) {
    throw new InvalidInputError(
      `jobs[${index}].retry.backoffMs`,
      `must be a number ≥ 0, got ${retry.backoffMs}`,
    );
  }
  return { attempts: retry.attempts, backoffMs: Math.round(retry.backoffMs) };
}

function describeIssue(issue: { path: PropertyKey[]; message: string }): string {
  return issue.path.length > 0 ? `${issue.path.map(String).join(".")}: ${issue.message}` : issue.message;
}

/** Keeps the first of each id: a chunk that names a file version twice must add it once. */
function uniqueById<T extends { id: string }>(jobs: T[]): T[] {
  const seen = new Set<string>();
  return jobs.filter((job) => !seen.has(job.id) && seen.add(job.id) !== undefined);
}
