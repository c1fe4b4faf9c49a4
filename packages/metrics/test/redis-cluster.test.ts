import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createDatabase } from "@lakeferry/db";
import {
  AllQueues,
  INGEST_QUEUE,
  IngestQueue,
  IngestWorker,
  redisConnection,
  type IngestJobData,
} from "@lakeferry/queue";
import { Registry } from "prom-client";
import { beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { registerBacklogMetrics } from "../src/index.ts";
import { parsePrometheusText, sampleValue } from "./prometheus-text.ts";

/**
 * The queue prefix as a Redis Cluster hash tag (`{…}`): every BullMQ key and lakeferry's own (the epoch
 * marker, the scripts' job keys) hashes to one slot, so the multi-key scripts run on a cluster. Proved on the
 * single Redis, and on a real 3-master cluster (`scripts/services.sh up redis-cluster`).
 */

const FILES = 6;

function job(fileId: number): { data: IngestJobData; retry: { attempts: number; backoffMs: number } } {
  return { data: { fileId, version: 1, ingestionId: 1 }, retry: { attempts: 2, backoffMs: 10 } };
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Deletes the prefix's keys on every master (a cluster's KEYS answers for one node only). */
async function deleteHashTagKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = redisConnection(redisUrl);
  try {
    const nodes = "nodes" in redis ? redis.nodes("master") : [redis];
    for (const node of nodes) {
      // One at a time: keys of a prefix without a hash tag lie in several slots.
      for (const key of await node.keys(`${prefix}:*`)) await node.del(key);
    }
  } finally {
    await redis.quit();
  }
}

/** Enqueue, scrape the backlog, work every job, enqueue again: all through `redisUrl` under `{…}`. */
async function queueAndMetricsUnderHashTag(redisUrl: string): Promise<void> {
  const prefix = `{lftest-${randomBytes(4).toString("hex")}}`;
  onTestFinished(async ({ task }) => {
    if (task.result?.state === "pass") await deleteHashTagKeys(redisUrl, prefix);
  });
  const queue = new IngestQueue({ redisUrl, prefix });
  const queues = new AllQueues({ redisUrl, prefix });
  // `files: false`: this test reads queues only; the pool never connects.
  const db = createDatabase({ connectionString: "postgresql://u:p@127.0.0.1:1/none", maxConnections: 1 });
  const worked: string[] = [];
  const worker = new IngestWorker({
    redisUrl,
    prefix,
    concurrency: 3,
    process: async (j) => {
      worked.push(j.jobId);
    },
  });
  onTestFinished(async () => {
    await worker.close();
    await Promise.all([queue.close(), queues.close(), db.close()]);
  });

  const jobs = Array.from({ length: FILES }, (_, i) => job(i + 1));
  expect(await queue.enqueue(jobs)).toBe(FILES);
  expect(await queue.enqueue(jobs)).toBe(0); // the live-jobs script, on the hash-tagged keys
  const epoch = await queue.redisEpoch();
  expect(epoch.created).toBe(true);
  expect(await queue.redisEpoch()).toEqual({ epoch: epoch.epoch, created: false });
  await queues.ping(5_000);

  const registry = new Registry();
  registerBacklogMetrics(registry, { db, queues, files: false, timeoutMs: 5_000 });
  const scraped = parsePrometheusText(await registry.metrics());
  expect(sampleValue(scraped, "lakeferry_queue_jobs", { queue: INGEST_QUEUE, state: "waiting" })).toBe(FILES);
  expect(
    sampleValue(scraped, "lakeferry_queue_oldest_waiting_seconds", { queue: INGEST_QUEUE }),
  ).toBeGreaterThan(0);
  expect(sampleValue(scraped, "lakeferry_metrics_read_errors_total")).toBeUndefined();

  await worker.start();
  await waitFor(`${FILES} jobs worked`, async () => (await queue.counts()).completed === FILES);
  expect(new Set(worked).size).toBe(FILES);
  const after = parsePrometheusText(await registry.metrics());
  expect(sampleValue(after, "lakeferry_queue_jobs", { queue: INGEST_QUEUE, state: "waiting" })).toBe(0);
  // Finished jobs are cleared by the other script and added afresh.
  expect(await queue.enqueue(jobs.slice(0, 2))).toBe(2);
  await waitFor("the re-added jobs worked", async () => worked.length === FILES + 2);
}

describe("a hash-tag queue prefix ({…})", () => {
  it("works on the single Redis: queue, scripts, workers and backlog metrics", async () => {
    const url = process.env.REDIS_URL;
    if (!url) throw new Error('REDIS_URL is not set: run `eval "$(bash scripts/services.sh env)"`');
    await queueAndMetricsUnderHashTag(url);
  });

  describe("on a Redis Cluster of 3 masters", () => {
    let clusterUrl: string | undefined;
    let unavailable: string | undefined;
    beforeAll(() => {
      const script = process.env.LAKEFERRY_SERVICES_SCRIPT;
      const url = process.env.LAKEFERRY_REDIS_CLUSTER_URL;
      if (!script || !url) {
        throw new Error(
          'LAKEFERRY_REDIS_CLUSTER_URL is not set: run `eval "$(bash scripts/services.sh env)"`',
        );
      }
      try {
        execFileSync("bash", [script, "up", "redis-cluster"], { stdio: "pipe", timeout: 120_000 });
        clusterUrl = `${url}?cluster=true`;
      } catch (error) {
        const output = (error as { stderr?: Buffer }).stderr?.toString().trim().split("\n").at(-1);
        unavailable = `the local Redis Cluster did not start (${output ?? String(error)})`;
      }
    }, 130_000);

    it("works there too, its keys in one slot", async (context) => {
      if (clusterUrl === undefined) return context.skip(unavailable);
      await queueAndMetricsUnderHashTag(clusterUrl);
    });

    it("refuses a prefix without a hash tag with Redis's cross-slot error", async (context) => {
      if (clusterUrl === undefined) return context.skip(unavailable);
      const prefix = `lftest-${randomBytes(4).toString("hex")}`;
      const queue = new IngestQueue({ redisUrl: clusterUrl, prefix });
      onTestFinished(async () => {
        await queue.close();
        await deleteHashTagKeys(clusterUrl!, prefix);
      });
      await expect(queue.enqueue([job(1)])).rejects.toThrow(/CROSSSLOT|slot/i);
    });
  });
});
