import { InvalidInputError, LakeferryError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import {
  INGEST_QUEUE,
  IngestQueue,
  IngestWorker,
  JobLockLostError,
  PermanentJobError,
  WorkerClosingError,
  type IngestJobContext,
} from "../src/index.ts";
import {
  closeAfterTest,
  deferred,
  inspectQueue,
  rawRedis,
  redisUrl,
  testPrefix,
  waitFor,
} from "./helpers.ts";

function files(count: number, retry = { attempts: 1, backoffMs: 10 }) {
  return Array.from({ length: count }, (_, index) => ({
    data: { fileId: index + 1, version: 1, ingestionId: 3 },
    retry,
  }));
}

function startWorker(
  prefix: string,
  concurrency: number,
  process: (job: IngestJobContext) => Promise<void>,
): Promise<IngestWorker> {
  const worker = new IngestWorker({ redisUrl: redisUrl(), prefix, concurrency, process });
  closeAfterTest({ close: () => worker.close({ timeoutMs: 1_000, abortGraceMs: 100 }) });
  return worker.start().then(() => worker);
}

describe("IngestWorker", () => {
  it("runs at most `concurrency` jobs at once and all of them in the end", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));
    await queue.enqueue(files(9));
    let running = 0;
    let peak = 0;
    const done: number[] = [];
    await startWorker(prefix, 3, async (job) => {
      running += 1;
      peak = Math.max(peak, running);
      await new Promise((resolve) => setTimeout(resolve, 60));
      running -= 1;
      done.push(job.data.fileId);
    });

    await waitFor("all 9 jobs completed", async () => (await queue.counts()).completed === 9);
    expect(peak).toBe(3);
    expect(done.sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  });

  it("retries a retryable failure with exponential backoff until it succeeds", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));
    await queue.enqueue(files(1, { attempts: 5, backoffMs: 150 }));
    const attempts: { attempt: number; maxAttempts: number; at: number }[] = [];
    await startWorker(prefix, 2, async (job) => {
      attempts.push({ attempt: job.attempt, maxAttempts: job.maxAttempts, at: Date.now() });
      if (job.attempt < 3) throw new Error(`Spark unavailable (attempt ${job.attempt})`);
    });

    await waitFor("the job completed", async () => (await queue.counts()).completed === 1);
    expect(attempts.map(({ attempt, maxAttempts }) => [attempt, maxAttempts])).toEqual([
      [1, 5],
      [2, 5],
      [3, 5],
    ]);
    const [first, second, third] = attempts.map(({ at }) => at) as [number, number, number];
    expect(second - first).toBeGreaterThanOrEqual(150); // backoff × 2⁰
    expect(third - second).toBeGreaterThanOrEqual(300); // backoff × 2¹
    const job = await inspectQueue(prefix, INGEST_QUEUE).getJob("file-1-v1");
    expect(job?.attemptsMade).toBe(3);
    expect(job?.finishedOn).toBeGreaterThan(0);
  });

  it("gives up after all attempts when the failure stays retryable", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));
    await queue.enqueue(files(1, { attempts: 2, backoffMs: 10 }));
    let calls = 0;
    await startWorker(prefix, 1, async () => {
      calls += 1;
      throw new Error("network reset");
    });

    await waitFor("the job failed", async () => (await queue.counts()).failed === 1);
    expect(calls).toBe(2);
    const job = await inspectQueue(prefix, INGEST_QUEUE).getJob("file-1-v1");
    expect(job?.failedReason).toBe("network reset");
  });

  it("stops after one attempt when the error is not retryable", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));
    await queue.enqueue(files(2, { attempts: 5, backoffMs: 10 }));
    const calls: number[] = [];
    await startWorker(prefix, 2, async (job) => {
      calls.push(job.data.fileId);
      if (job.data.fileId === 1) throw new PermanentJobError("file is not parquet");
      throw new InvalidInputError("table", "bad table name");
    });

    await waitFor("both jobs failed", async () => (await queue.counts()).failed === 2);
    expect(calls.sort()).toEqual([1, 2]);
    const inspector = inspectQueue(prefix, INGEST_QUEUE);
    const [permanent, invalid] = await Promise.all([
      inspector.getJob("file-1-v1"),
      inspector.getJob("file-2-v1"),
    ]);
    expect(permanent?.attemptsMade).toBe(1);
    expect(permanent?.failedReason).toBe("PERMANENT_JOB_ERROR: file is not parquet");
    expect(invalid?.failedReason).toBe("INVALID_INPUT: table: bad table name");
  });

  it("close() stops taking jobs and waits for the running ones", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));
    await queue.enqueue(files(4));
    const started = deferred();
    const finished: number[] = [];
    const worker = await startWorker(prefix, 2, async (job) => {
      started.resolve();
      await new Promise((resolve) => setTimeout(resolve, 300));
      finished.push(job.data.fileId);
    });
    await started.promise;

    await worker.close({ timeoutMs: 5_000 });
    expect(finished).toHaveLength(2);
    expect(await queue.counts()).toMatchObject({ waiting: 2, active: 0, completed: 2 });
  });

  it("close() aborts jobs past its timeout and puts them back without spending an attempt", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));
    await queue.enqueue(files(2, { attempts: 3, backoffMs: 10 }));
    const started = deferred();
    const abandoned = deferred();
    const worker = await startWorker(prefix, 2, async (job) => {
      if (job.data.fileId === 1) {
        started.resolve();
        // Honours the signal: stops at once when aborted.
        await new Promise((_, reject) =>
          job.signal.addEventListener("abort", () => reject(job.signal.reason as Error)),
        );
      } else {
        // Ignores the signal: the worker abandons it after the grace period.
        await abandoned.promise;
      }
    });
    await started.promise;
    await waitFor("both jobs active", async () => (await queue.counts()).active === 2);

    const closing = Date.now();
    await worker.close({ timeoutMs: 200, abortGraceMs: 300 });
    const took = Date.now() - closing;
    expect(took).toBeGreaterThanOrEqual(200 + 300);
    expect(took).toBeLessThan(3_000);
    expect(await queue.counts()).toMatchObject({ waiting: 2, active: 0, failed: 0, delayed: 0 });

    const attempts: number[] = [];
    await startWorker(prefix, 2, async (job) => {
      attempts.push(job.attempt);
    });
    await waitFor("both jobs completed by a new worker", async () => (await queue.counts()).completed === 2);
    expect(attempts).toEqual([1, 1]);
    abandoned.resolve();
  });

  it("aborts a job whose lock was lost, since another worker may take it over", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));
    await queue.enqueue(files(1));
    const aborted = deferred<unknown>();
    const errors: unknown[] = [];
    const worker = new IngestWorker({
      redisUrl: redisUrl(),
      prefix,
      concurrency: 1,
      lockDurationMs: 400,
      onError: (err) => errors.push(err),
      process: (job) =>
        new Promise((_, reject) =>
          job.signal.addEventListener("abort", () => {
            aborted.resolve(job.signal.reason);
            reject(job.signal.reason as Error);
          }),
        ),
    });
    closeAfterTest({ close: () => worker.close({ timeoutMs: 1_000 }) });
    await worker.start();
    await waitFor("the job is active", async () => (await queue.counts()).active === 1);

    const redis = rawRedis();
    const lockKey = `${inspectQueue(prefix, INGEST_QUEUE).toKey("file-1-v1")}:lock`;
    await waitFor("the lock exists", async () => (await redis.get(lockKey)) !== null);
    await redis.del(lockKey);

    const reason = await aborted.promise;
    expect(reason).toBeInstanceOf(JobLockLostError);
    expect((reason as JobLockLostError).jobId).toBe("file-1-v1");
    await waitFor("the lost lock was reported", () => errors.length > 0);
  });

  it("hands the processor a signal whose reason names the shutdown", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));
    await queue.enqueue(files(1));
    const aborted = deferred<unknown>();
    const worker = await startWorker(prefix, 1, async (job) => {
      await new Promise<void>((resolve) =>
        job.signal.addEventListener("abort", () => {
          aborted.resolve(job.signal.reason);
          resolve();
        }),
      );
    });
    await waitFor("the job is active", async () => (await queue.counts()).active === 1);

    await worker.close({ timeoutMs: 100 });
    const reason = await aborted.promise;
    expect(reason).toBeInstanceOf(WorkerClosingError);
    expect((reason as WorkerClosingError).retryable).toBe(true);
  });

  it("an outage pauses the queue for every worker and returns the job without spending an attempt", async () => {
    const prefix = testPrefix();
    const queue = new IngestQueue({ redisUrl: redisUrl(), prefix });
    closeAfterTest(queue);
    await queue.enqueue(files(1, { attempts: 1, backoffMs: 10 }));
    const attempts: number[] = [];
    const pauses: number[] = [];
    let calls = 0;
    const worker = new IngestWorker({
      redisUrl: redisUrl(),
      prefix,
      concurrency: 1,
      minOutagePauseMs: 300,
      maxOutagePauseMs: 300,
      onOutage: ({ pauseMs }) => pauses.push(pauseMs),
      process: async (job) => {
        attempts.push(job.attempt);
        if (++calls <= 2) {
          throw new LakeferryError("SPARK_UNAVAILABLE", "Spark is down (test)", {
            retryable: true,
            outage: "spark",
          });
        }
      },
    });
    closeAfterTest({ close: () => worker.close({ timeoutMs: 1_000, abortGraceMs: 100 }) });
    await worker.start();
    await waitFor("the queue paused", async () => (await queue.pausedForMs()) > 0);
    await waitFor("the job to complete", async () =>
      (await queue.counts()).completed === 1 ? true : undefined,
    );
    // One attempt allowed, two outages survived: the job ran three times as its first attempt.
    expect(attempts).toEqual([1, 1, 1]);
    expect(pauses.slice(0, 2).every((ms) => ms >= 240 && ms <= 360)).toBe(true);
    expect(pauses.at(-1)).toBe(0); // closed again once a job succeeded
  });

  it("jobs that were running when an outage paused the queue do not count it again", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));
    await queue.enqueue(files(6, { attempts: 1, backoffMs: 10 }));
    const pauses: number[] = [];
    const started = deferred<void>();
    let running = 0;
    let failed = 0;
    const worker = new IngestWorker({
      redisUrl: redisUrl(),
      prefix,
      concurrency: 6,
      minOutagePauseMs: 200,
      maxOutagePauseMs: 10_000,
      onOutage: ({ pauseMs }) => pauses.push(pauseMs),
      process: async () => {
        // The first six runs all fail together, as the files of one batch do; every later run succeeds.
        if (failed >= 6) return;
        if (++running === 6) started.resolve();
        await started.promise;
        failed += 1;
        throw new LakeferryError("BATCH_IN_DOUBT", "left for recovery (test)", {
          retryable: true,
          outage: "spark",
        });
      },
    });
    closeAfterTest({ close: () => worker.close({ timeoutMs: 1_000, abortGraceMs: 100 }) });
    await worker.start();
    await waitFor("every job to complete", async () =>
      (await queue.counts()).completed === 6 ? true : undefined,
    );
    // One pause for the six failures (not six pauses doubling to the longest), then closed again.
    expect(pauses).toHaveLength(2);
    expect(pauses[0]).toBeGreaterThanOrEqual(160);
    expect(pauses[0]).toBeLessThanOrEqual(240);
    expect(pauses[1]).toBe(0);
  });
});
