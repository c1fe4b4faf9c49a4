import { InvalidInputError, LakeferryError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { INGEST_QUEUE, IngestQueue, IngestWorker, ingestJobId, type IngestJobData } from "../src/index.ts";
import { closeAfterTest, deferred, inspectQueue, redisUrl, testPrefix, waitFor } from "./helpers.ts";

const retry = { attempts: 3, backoffMs: 10 };

function file(fileId: number, version = 1): { data: IngestJobData; retry: typeof retry } {
  return { data: { fileId, version, ingestionId: 7 }, retry };
}

describe("IngestQueue", () => {
  it("derives the job id from the file version, so enqueueing twice adds nothing", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));

    expect(await queue.enqueue([file(1), file(2), file(2, 2), file(1)])).toBe(3);
    expect(await queue.enqueue([file(1), file(2), file(2, 2)])).toBe(0);
    expect(await queue.enqueue([file(1), file(3)])).toBe(1);

    const inspector = inspectQueue(prefix, INGEST_QUEUE);
    const ids = (await inspector.getWaiting()).map((job) => job.id).sort();
    expect(ids).toEqual(["file-1-v1", "file-2-v1", "file-2-v2", "file-3-v1"]);
    expect(ingestJobId({ fileId: 2, version: 2 })).toBe("file-2-v2");
    const job = await inspector.getJob("file-1-v1");
    expect(job?.data).toEqual({ fileId: 1, version: 1, ingestionId: 7 });
    expect(job?.opts.attempts).toBe(3);
    expect(job?.opts.backoff).toEqual({ type: "exponential", delay: 10 });
    expect(await queue.counts()).toMatchObject({ waiting: 4, active: 0, completed: 0, failed: 0 });
  });

  it("adds more jobs than one chunk holds, and skips them all the second time", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));
    const jobs = Array.from({ length: 1_234 }, (_, index) => file(index + 1));

    expect(await queue.enqueue(jobs)).toBe(1_234);
    expect(await queue.enqueue(jobs)).toBe(0);
    expect((await queue.counts()).waiting).toBe(1_234);
  });

  it("runs a completed or failed job again when it is enqueued again", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));
    const runs: string[] = [];
    const worker = closeAfterTest(
      new IngestWorker({
        redisUrl: redisUrl(),
        prefix,
        concurrency: 2,
        process: async (job) => {
          runs.push(job.jobId);
          if (job.data.fileId === 2 && runs.filter((id) => id === job.jobId).length === 1) {
            throw new LakeferryError("CORRUPT_FILE", "not parquet", { retryable: false });
          }
        },
      }),
    );
    await worker.start();
    const inspector = inspectQueue(prefix, INGEST_QUEUE);

    expect(await queue.enqueue([file(1), file(2)])).toBe(2);
    await waitFor("one job completed and one failed", async () => {
      const counts = await queue.counts();
      return counts.completed === 1 && counts.failed === 1;
    });
    // Both finished jobs are still in Redis: BullMQ alone would ignore an add with their ids.
    expect(await inspector.getJobState("file-1-v1")).toBe("completed");
    expect(await inspector.getJobState("file-2-v1")).toBe("failed");
    // firstJobs (versions the caller has just registered) does not look: BullMQ ignores these adds.
    await queue.enqueue([file(1), file(2)], { firstJobs: true });
    expect(await inspector.getJobState("file-1-v1")).toBe("completed");
    expect(await inspector.getJobState("file-2-v1")).toBe("failed");

    expect(await queue.enqueue([file(1), file(2)])).toBe(2);
    await waitFor("both jobs completed", async () => (await queue.counts()).completed === 2);
    expect(runs.sort()).toEqual(["file-1-v1", "file-1-v1", "file-2-v1", "file-2-v1"]);
    const rerun = await inspector.getJob("file-2-v1");
    expect(rerun?.attemptsMade).toBe(1);
    expect(await queue.counts()).toMatchObject({
      waiting: 0,
      active: 0,
      delayed: 0,
      completed: 2,
      failed: 0,
    });
  });

  it("tells which ids have a job that is waiting, delayed or active", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));
    const all = ["file-1-v1", "file-2-v1", "file-3-v1", "file-4-v1", "file-9-v1"];

    await queue.enqueue([
      file(1),
      file(2),
      file(3),
      { data: file(4).data, retry: { attempts: 2, backoffMs: 60_000 } },
    ]);
    expect([...(await queue.liveJobIds(all))].sort()).toEqual([
      "file-1-v1",
      "file-2-v1",
      "file-3-v1",
      "file-4-v1",
    ]);

    const release = deferred();
    const worker = closeAfterTest(
      new IngestWorker({
        redisUrl: redisUrl(),
        prefix,
        concurrency: 4,
        process: async (job) => {
          if (job.data.fileId === 1) await release.promise; // stays active
          if (job.data.fileId === 4) throw new Error("transient"); // delayed for a minute
        },
      }),
    );
    await worker.start();
    await waitFor("one active, one delayed, two completed", async () => {
      const counts = await queue.counts();
      return counts.active === 1 && counts.delayed === 1 && counts.completed === 2;
    });
    expect([...(await queue.liveJobIds(all))].sort()).toEqual(["file-1-v1", "file-4-v1"]);

    release.resolve();
    await waitFor("the active job completed", async () => (await queue.counts()).completed === 3);
    expect([...(await queue.liveJobIds(all))]).toEqual(["file-4-v1"]);
    expect((await queue.liveJobIds([])).size).toBe(0);
  });

  it("refuses a malformed payload or retry policy and enqueues nothing", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));
    const bad = { data: { fileId: 0, version: 1, ingestionId: 1 }, retry };

    await expect(queue.enqueue([file(1), bad])).rejects.toThrow(InvalidInputError);
    await expect(queue.enqueue([file(1), bad])).rejects.toThrow(/jobs\[1\]\.data: fileId/);
    await expect(queue.enqueue([{ ...file(1), retry: { attempts: 0, backoffMs: 1 } }])).rejects.toThrow(
      /jobs\[0\]\.retry\.attempts/,
    );
    expect((await queue.counts()).waiting).toBe(0);
    expect(() => new IngestQueue({ redisUrl: "http://localhost:6379" })).toThrow(/redisUrl/);
  });
});
