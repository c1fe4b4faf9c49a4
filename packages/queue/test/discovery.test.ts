import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { DISCOVER_QUEUE, DiscoveryQueue, DiscoveryWorker, type DiscoverJobData } from "../src/index.ts";
import { closeAfterTest, deferred, inspectQueue, redisUrl, testPrefix, waitFor } from "./helpers.ts";

describe("DiscoveryQueue schedules", () => {
  it("upserts one schedule per ingestion, replaces it, and removes it", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new DiscoveryQueue({ redisUrl: redisUrl(), prefix }));
    const other = closeAfterTest(new DiscoveryQueue({ redisUrl: redisUrl(), prefix }));

    await queue.setSchedule(1, "0 * * * *");
    await other.setSchedule(1, "0 * * * *");
    await queue.setSchedule(2, "*/5 * * * *");
    let schedules = await queue.schedules();
    expect(schedules.map(({ ingestionId, cron }) => ({ ingestionId, cron }))).toEqual([
      { ingestionId: 1, cron: "0 * * * *" },
      { ingestionId: 2, cron: "*/5 * * * *" },
    ]);
    const hourly = schedules.find((schedule) => schedule.ingestionId === 1);
    expect(hourly?.next?.getUTCMinutes()).toBe(0);
    expect(hourly!.next!.getTime()).toBeGreaterThan(Date.now());

    await other.setSchedule(1, "30 2 * * *");
    schedules = await queue.schedules();
    expect(schedules.find((schedule) => schedule.ingestionId === 1)?.cron).toBe("30 2 * * *");
    expect(schedules).toHaveLength(2);

    await queue.setSchedule(2, null);
    await queue.setSchedule(3, null); // removing a schedule that does not exist is fine
    expect((await queue.schedules()).map(({ ingestionId }) => ingestionId)).toEqual([1]);
  });

  it("refuses a bad cron pattern or ingestion id with a message that says what to fix", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new DiscoveryQueue({ redisUrl: redisUrl(), prefix }));

    for (const cron of ["every hour", "99 * * * *", "* * * * * * * *"]) {
      const error: unknown = await queue.setSchedule(1, cron).catch((err: unknown) => err);
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as InvalidInputError).field).toBe("cron");
      expect((error as Error).message).toContain(cron);
    }
    await expect(queue.setSchedule(0, "0 * * * *")).rejects.toThrow(
      /ingestionId: must be a positive integer/,
    );
    await expect(queue.requestDiscovery(1.5)).rejects.toThrow(InvalidInputError);
    expect(await queue.schedules()).toEqual([]);
  });
});

describe("DiscoveryWorker", () => {
  it("gives each scheduled firing to exactly one of two workers", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new DiscoveryQueue({ redisUrl: redisUrl(), prefix }));
    const runs: { worker: string; jobId: string; data: DiscoverJobData }[] = [];
    for (const name of ["a", "b"]) {
      const worker = new DiscoveryWorker({
        redisUrl: redisUrl(),
        prefix,
        concurrency: 2,
        process: async (data, { jobId }) => {
          runs.push({ worker: name, jobId, data });
        },
      });
      closeAfterTest(worker);
      await worker.start();
    }

    await queue.setSchedule(5, "* * * * * *"); // every second
    await waitFor("three firings", () => runs.length >= 3, 6_000);
    await queue.setSchedule(5, null);

    const inspector = inspectQueue(prefix, DISCOVER_QUEUE);
    await waitFor("no discovery left waiting or running", async () => {
      const counts = await inspector.getJobCounts("waiting", "active", "delayed");
      return counts.waiting === 0 && counts.active === 0 && counts.delayed === 0;
    });
    const jobIds = runs.map((run) => run.jobId);
    expect(new Set(jobIds).size).toBe(jobIds.length);
    expect(runs.every((run) => run.data.ingestionId === 5 && run.data.trigger === "schedule")).toBe(true);
    expect((await inspector.getJobCounts("completed")).completed).toBe(runs.length);
  });

  it("merges manual requests made while one is waiting", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new DiscoveryQueue({ redisUrl: redisUrl(), prefix }));
    await queue.requestDiscovery(8);
    await queue.requestDiscovery(8);
    await queue.requestDiscovery(9);
    const inspector = inspectQueue(prefix, DISCOVER_QUEUE);
    expect((await inspector.getJobCounts("waiting")).waiting).toBe(2);

    const runs: DiscoverJobData[] = [];
    const worker = closeAfterTest(
      new DiscoveryWorker({
        redisUrl: redisUrl(),
        prefix,
        process: async (data) => {
          runs.push(data);
        },
      }),
    );
    await worker.start();
    await waitFor("both discoveries ran", () => runs.length === 2);
    expect(runs.sort((a, b) => a.ingestionId - b.ingestionId)).toEqual([
      { ingestionId: 8, trigger: "manual" },
      { ingestionId: 9, trigger: "manual" },
    ]);

    await queue.requestDiscovery(8); // the earlier one finished, so this one runs too
    await waitFor("the new request ran", () => runs.length === 3);
  });

  it("queues exactly one more manual discovery when asked while one is running", async () => {
    const prefix = testPrefix();
    const queue = closeAfterTest(new DiscoveryQueue({ redisUrl: redisUrl(), prefix }));
    const release = deferred();
    let runs = 0;
    const worker = closeAfterTest(
      new DiscoveryWorker({
        redisUrl: redisUrl(),
        prefix,
        concurrency: 2,
        process: async () => {
          runs += 1;
          if (runs === 1) await release.promise;
        },
      }),
    );
    await worker.start();
    await queue.requestDiscovery(4);
    await waitFor("the first discovery is running", () => runs === 1);

    await queue.requestDiscovery(4);
    await queue.requestDiscovery(4);
    const inspector = inspectQueue(prefix, DISCOVER_QUEUE);
    expect(runs).toBe(1); // not run alongside the active one
    release.resolve();
    await waitFor("the follow-up ran", () => runs === 2);
    await waitFor("nothing left to run", async () => {
      const counts = await inspector.getJobCounts("waiting", "active", "delayed", "completed");
      return counts.waiting === 0 && counts.active === 0 && counts.delayed === 0 && counts.completed === 2;
    });
    expect(runs).toBe(2);
  });
});
