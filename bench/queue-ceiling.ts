/**
 * The ceiling the pipeline bench compares against: how fast raw BullMQ adds jobs (addBulk) and runs no-op
 * jobs at concurrency 50 on this Redis, next to the same through IngestQueue / IngestWorker.
 *
 *   eval "$(bash scripts/services.sh env)"
 *   npx tsx bench/queue-ceiling.ts [jobs=20000] [concurrency=50]
 */
import { randomBytes } from "node:crypto";
import { Queue, Worker, type JobsOptions } from "bullmq";
import { Redis } from "ioredis";
import { INGEST_QUEUE, IngestQueue, IngestWorker, ingestJobId, type IngestJobData } from "@lakeferry/queue";

const jobs = Number(process.argv[2] ?? 20_000);
const concurrency = Number(process.argv[3] ?? 50);
const chunk = 500;
const redisUrl = process.env.REDIS_URL;
if (!redisUrl) throw new Error('REDIS_URL is not set; run: eval "$(bash scripts/services.sh env)"');

const payloads: IngestJobData[] = Array.from({ length: jobs }, (_, index) => ({
  fileId: index + 1,
  version: 1,
  ingestionId: 1,
}));
// The options IngestQueue gives its jobs, so the two measurements differ only by lakeferry's code.
const options = (data: IngestJobData): JobsOptions => ({
  jobId: ingestJobId(data),
  attempts: 3,
  backoff: { type: "exponential", delay: 1_000 },
  removeOnComplete: { count: 1_000 },
  removeOnFail: { count: 10_000 },
});

async function timed(run: () => Promise<void>): Promise<number> {
  const started = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

/** Polls until no job is left to run (completed jobs are trimmed to the last 1 000, so count what remains). */
async function untilDrained(queue: Queue): Promise<void> {
  const deadline = Date.now() + 600_000;
  for (;;) {
    const counts = await queue.getJobCounts("waiting", "active", "delayed", "prioritized", "failed");
    if (counts.failed) throw new Error(`${counts.failed} jobs failed`);
    if (Object.values(counts).every((count) => count === 0)) return;
    if (Date.now() > deadline) throw new Error("jobs did not complete within 10 minutes");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  const keys = await redis.keys(`${prefix}:*`);
  for (let start = 0; start < keys.length; start += 1_000)
    await redis.del(...keys.slice(start, start + 1_000));
}

function rate(seconds: number): string {
  return `${Math.round(jobs / seconds).toLocaleString("en-US")} jobs/s (${seconds.toFixed(2)} s)`;
}

const admin = new Redis(redisUrl, { maxRetriesPerRequest: null });
const figures: Record<string, string> = {};

{
  const prefix = `lfbench-${randomBytes(4).toString("hex")}`;
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(INGEST_QUEUE, { connection, prefix });
  figures["raw BullMQ addBulk"] = rate(
    await timed(async () => {
      for (let start = 0; start < jobs; start += chunk) {
        await queue.addBulk(
          payloads
            .slice(start, start + chunk)
            .map((data) => ({ name: "ingest-file", data, opts: options(data) })),
        );
      }
    }),
  );
  const workerConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  let worker: Worker | undefined;
  figures[`raw BullMQ no-op processing @${concurrency}`] = rate(
    await timed(async () => {
      worker = new Worker(INGEST_QUEUE, async () => {}, {
        connection: workerConnection,
        prefix,
        concurrency,
      });
      await untilDrained(queue);
    }),
  );
  await worker?.close();
  await queue.close();
  await Promise.all([connection.quit(), workerConnection.quit()]);
  await deletePrefix(admin, prefix);
}

{
  const prefix = `lfbench-${randomBytes(4).toString("hex")}`;
  const queue = new IngestQueue({ redisUrl, prefix });
  const inspectorConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const inspector = new Queue(INGEST_QUEUE, { connection: inspectorConnection, prefix });
  const retry = { attempts: 3, backoffMs: 1_000 };
  figures["IngestQueue.enqueue"] = rate(
    await timed(async () => void (await queue.enqueue(payloads.map((data) => ({ data, retry }))))),
  );
  figures["IngestQueue.enqueue again (all skipped)"] = rate(
    await timed(async () => void (await queue.enqueue(payloads.map((data) => ({ data, retry }))))),
  );
  const worker = new IngestWorker({ redisUrl, prefix, concurrency, process: async () => {} });
  figures[`IngestWorker no-op processing @${concurrency}`] = rate(
    await timed(async () => {
      await worker.start();
      await untilDrained(inspector);
    }),
  );
  await worker.close();
  await queue.close();
  await inspector.close();
  await inspectorConnection.quit();
  await deletePrefix(admin, prefix);
}

await admin.quit();
console.log(`queue ceiling: ${jobs.toLocaleString("en-US")} jobs, Redis ${redisUrl}`);
for (const [what, figure] of Object.entries(figures)) console.log(`  ${what.padEnd(42)} ${figure}`);
