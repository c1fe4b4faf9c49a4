/**
 * What lakeferry's control plane costs, measured in one run on this machine:
 *   1. raw BullMQ: no-op jobs through a bare Queue + Worker (the ceiling);
 *   2. our control plane: the same number of files through IngestQueue → IngestWorker → FileIngestor (claims,
 *      leases, group commits, outcome records in Postgres) with a no-op BatchWriter in place of Spark, as
 *      files/s and as a ratio to (1);
 *   3. discovery registration: 100,000 listed files registered page by page (registerFiles), files/s;
 *   4. end to end: 1,000 small JSON files discovered and written through Spark into Iceberg, seconds.
 *
 *   eval "$(bash scripts/services.sh env)"
 *   npx tsx bench/pipeline.ts [files=5000] [listed=100000] [e2eFiles=1000] [concurrency=1000, the worker default]
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Queue, Worker } from "bullmq";
import { Redis } from "ioredis";
import { createLogger } from "@lakeferry/core";
import {
  createDatabase,
  migrate,
  registerFiles,
  startRun,
  statusCounts,
  upsertIngestion,
  type Database,
  type IngestionInput,
  type ListedFile,
} from "@lakeferry/db";
import type { PublishOutcome, StagedWrite, WriteBatch } from "@lakeferry/iceberg";
import {
  applyIngestion,
  discoverFiles,
  enqueueFiles,
  FileIngestor,
  parseIngestionSpec,
  waitForRun,
  WorkerRuntime,
  type BatchWriter,
  type PipelineContext,
} from "@lakeferry/pipeline";
import { IngestQueue, IngestWorker } from "@lakeferry/queue";
import { SparkConnectClient } from "@lakeferry/spark-connect";
import { need } from "./service-env.ts";

const [files, listed, e2eFiles, concurrency] = [5_000, 100_000, 1_000, 1_000].map((fallback, i) => {
  const arg = process.argv[2 + i];
  return arg === undefined ? fallback : Number(arg);
}) as [number, number, number, number];

const databaseUrl = need("DATABASE_URL");
const redisUrl = need("REDIS_URL");
const sparkRemote = need("SPARK_REMOTE");

const id = randomBytes(4).toString("hex");
const schema = `bench_${id}`;
const prefix = `bench-${id}`;
const logger = createLogger({ name: "bench", level: "silent" });

const seconds = (startedNs: bigint): number => Number(process.hrtime.bigint() - startedNs) / 1e9;
const perSecond = (n: number, s: number): string => `${Math.round(n / s).toLocaleString("en-US")} files/s`;

function report(label: string, figure: string, detail: string): void {
  console.log(`${label.padEnd(46)} ${figure.padStart(18)}   ${detail}`);
}

/** Resolves after `count` calls of the returned `tick`. */
function countdown(count: number): { tick: () => void; done: Promise<void> } {
  let left = count;
  let resolve!: () => void;
  const done = new Promise<void>((r) => (resolve = r));
  return {
    tick: () => {
      if (--left === 0) resolve();
    },
    done,
  };
}

/** (1) Raw BullMQ, no-op processor, jobs added in chunks of 500 while the worker runs. */
async function rawBullmq(): Promise<number> {
  const connection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const name = "raw-noop";
  const queue = new Queue(name, { connection, prefix: `${prefix}-raw` });
  const { tick, done } = countdown(files);
  const workerConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const worker = new Worker(name, async () => tick(), {
    connection: workerConnection,
    prefix: `${prefix}-raw`,
    concurrency,
  });
  await worker.waitUntilReady();
  const started = process.hrtime.bigint();
  for (let start = 0; start < files; start += 500) {
    await queue.addBulk(
      Array.from({ length: Math.min(500, files - start) }, (_, i) => ({
        name: "noop",
        data: { fileId: start + i + 1, version: 1, ingestionId: 1 },
        opts: {
          jobId: `file-${start + i + 1}-v1`,
          attempts: 3,
          backoff: { type: "exponential", delay: 1_000 },
          removeOnComplete: { count: 1_000 },
          removeOnFail: { count: 10_000 },
        },
      })),
    );
  }
  await done;
  const s = seconds(started);
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  await connection.quit();
  await workerConnection.quit();
  report(
    "raw BullMQ no-op",
    perSecond(files, s),
    `${files} jobs, concurrency ${concurrency}, ${s.toFixed(2)} s`,
  );
  return files / s;
}

/** A BatchWriter that writes nothing: every file "lands" with one record in a made-up staged snapshot. */
class NoopWriter implements BatchWriter {
  #snapshot = 1n;
  writes = 0;

  async stage(batch: WriteBatch): Promise<StagedWrite> {
    this.writes++;
    return {
      stagedSnapshotId: String(this.#snapshot++),
      records: new Map(batch.files.map((file) => [file, 1])),
      ingestedAtMicros: batch.ingestedAtMicros ?? 1n,
    };
  }

  async publish(_table: string, stagedSnapshotId: string): Promise<PublishOutcome> {
    return { kind: "published", snapshotId: stagedSnapshotId };
  }

  async hasBatchRows(): Promise<boolean> {
    return false;
  }
}

function ingestionInput(name: string, overrides: Partial<IngestionInput> = {}): IngestionInput {
  return {
    name,
    sourceUri: `file:///bench/${name}/`,
    format: "json",
    readerOptions: {},
    schemaDdl: null,
    glob: null,
    targetTable: `lake.bench_${id}.${name.replace(/-/g, "_")}`,
    schedule: null,
    maxAttempts: 3,
    backoffMs: 1_000,
    modifiedPolicy: "ignore",
    listing: { mode: "full" },
    enabled: true,
    ...overrides,
  };
}

function listedPage(name: string, start: number, count: number): ListedFile[] {
  const modifiedAt = new Date("2026-11-29T00:00:00Z");
  return Array.from({ length: count }, (_, i) => ({
    uri: `file:///bench/${name}/part-${String(start + i).padStart(7, "0")}.json`,
    size: 100 + ((start + i) % 900),
    etag: `etag-${start + i}`,
    modifiedAt,
  }));
}

/** (2) Our control plane with Spark replaced by NoopWriter. */
async function controlPlane(db: Database, rawRate: number): Promise<void> {
  const { ingestion } = await upsertIngestion(db, ingestionInput("control-plane"));
  const run = await startRun(db, { ingestionId: ingestion.id, trigger: "manual" });
  const refs = [];
  for (let start = 0; start < files; start += 1_000) {
    const page = listedPage("control-plane", start, Math.min(1_000, files - start));
    const { created } = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: page,
      modifiedPolicy: "ignore",
    });
    refs.push(...created);
  }
  const writer = new NoopWriter();
  const ingestor = new FileIngestor({ db, writer, workerId: `bench-${id}`, logger, concurrency });
  const queue = new IngestQueue({ redisUrl, prefix });
  const { tick, done } = countdown(files);
  const worker = new IngestWorker({
    redisUrl,
    prefix,
    concurrency,
    process: async (job) => {
      await ingestor.process(job);
      tick();
    },
  });
  await worker.start();
  const started = process.hrtime.bigint();
  for (let start = 0; start < refs.length; start += 1_000) {
    await enqueueFiles(queue, ingestion, refs.slice(start, start + 1_000));
  }
  await done;
  const s = seconds(started);
  await worker.close();
  await ingestor.close();
  await queue.drainAll();
  await queue.close();
  const counts = await statusCounts(db, ingestion.id);
  if (counts.SUCCESS !== files) throw new Error(`control plane: ${counts.SUCCESS} of ${files} files SUCCESS`);
  report(
    "control plane (no-op writer)",
    perSecond(files, s),
    `${(files / s / rawRate).toFixed(2)}× raw BullMQ; ${writer.writes} batches (${(files / writer.writes).toFixed(0)} files each), ${s.toFixed(2)} s`,
  );
}

/** (3) Registration of `listed` files in pages of 1,000, then the same listing again (nothing new). */
async function registration(db: Database): Promise<void> {
  const { ingestion } = await upsertIngestion(db, ingestionInput("registration"));
  for (const pass of ["new", "known"] as const) {
    const run = await startRun(db, { ingestionId: ingestion.id, trigger: "manual" });
    let created = 0;
    const started = process.hrtime.bigint();
    for (let start = 0; start < listed; start += 1_000) {
      const page = listedPage("registration", start, Math.min(1_000, listed - start));
      const result = await registerFiles(db, {
        ingestionId: ingestion.id,
        runId: run.id,
        files: page,
        modifiedPolicy: "ignore",
      });
      created += result.created.length;
    }
    const s = seconds(started);
    report(
      `registration, ${pass === "new" ? "new files" : "re-listing (all known)"}`,
      perSecond(listed, s),
      `${listed.toLocaleString("en-US")} files, ${created.toLocaleString("en-US")} created, pages of 1,000, ${s.toFixed(2)} s`,
    );
  }
}

/** (4) End to end through Spark: write small files, discover, one in-process worker, wait until settled. */
/**
 * End to end in a schema and queue prefix of its own: the files the registration step left PENDING in the
 * bench's schema (100,000 that exist nowhere) would otherwise be re-enqueued by this worker's reconciler
 * and worked on alongside, which is what made this figure 4× the CLI's for the same files.
 */
async function endToEnd(): Promise<void> {
  const e2eSchema = `${schema}_e2e`;
  const e2ePrefix = `${prefix}-e2e`;
  const db = createDatabase({ connectionString: databaseUrl, schema: e2eSchema, maxConnections: 4 });
  await migrate(db);
  try {
    await endToEndIn(db, e2eSchema, e2ePrefix);
  } finally {
    await db.pool.query(`DROP SCHEMA IF EXISTS "${e2eSchema}" CASCADE`).catch(() => {});
    await db.close();
  }
}

async function endToEndIn(db: Database, dbSchema: string, queuePrefix: string): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "lakeferry-bench-"));
  const source = join(dir, "landing");
  await mkdir(source);
  await Promise.all(
    Array.from({ length: e2eFiles }, (_, i) =>
      writeFile(join(source, `f-${String(i).padStart(5, "0")}.json`), `{"id": ${i}, "amount": ${i / 10}}\n`),
    ),
  );
  const table = `lake.bench_${id}.e2e`;
  const queue = new IngestQueue({ redisUrl, prefix: queuePrefix });
  const ctx: PipelineContext = { db, queue, logger };
  const { ingestion } = await applyIngestion(
    ctx,
    parseIngestionSpec({
      name: "e2e",
      source: `file://${source}/`,
      format: "json",
      schema: "id BIGINT, amount DOUBLE",
      table,
      // The files are written whole before the pass: nothing to wait for (the local default is 5 s).
      listing: { minAgeMs: 0 },
    }),
  );
  const runtime = new WorkerRuntime({
    databaseUrl,
    redisUrl,
    sparkRemote,
    queuePrefix,
    dbSchema,
    concurrency,
    workerId: `bench-e2e-${id}`,
    logger,
  });
  await runtime.start();
  const started = process.hrtime.bigint();
  const discovered = await discoverFiles(ctx, ingestion, { trigger: "manual" });
  const settled = await waitForRun(ctx, discovered.run.id, { timeoutMs: 600_000, pollMs: 100 });
  const s = seconds(started);
  await runtime.close({ timeoutMs: 10_000 });
  await queue.close();
  const spark = new SparkConnectClient({ remote: sparkRemote });
  const [snapshots] = await spark.sql(`SELECT count(*) AS n FROM ${table}.snapshots`);
  await spark.sql(`DROP TABLE IF EXISTS ${table} PURGE`);
  await spark.close();
  await rm(dir, { recursive: true, force: true });
  if (settled.failed > 0 || settled.settled !== e2eFiles) {
    throw new Error(`end to end: ${settled.settled} settled, ${settled.failed} failed of ${e2eFiles}`);
  }
  report(
    `end to end, ${e2eFiles.toLocaleString("en-US")} small files through Spark`,
    `${s.toFixed(1)} s`,
    `${perSecond(e2eFiles, s)}, ${String(snapshots?.n)} Iceberg snapshots, 1 worker × concurrency ${concurrency}`,
  );
}

async function deleteKeys(): Promise<void> {
  const redis = new Redis(redisUrl);
  for (const pattern of [`${prefix}:*`, `${prefix}-raw:*`, `${prefix}-e2e:*`]) {
    const keys = await redis.keys(pattern);
    for (let start = 0; start < keys.length; start += 1_000)
      await redis.del(...keys.slice(start, start + 1_000));
  }
  await redis.quit();
}

const db = createDatabase({ connectionString: databaseUrl, schema, maxConnections: 10 });
try {
  await migrate(db);
  console.log(`lakeferry pipeline bench (schema ${schema}, prefix ${prefix})\n`);
  const rawRate = await rawBullmq();
  await controlPlane(db, rawRate);
  await registration(db);
  await endToEnd();
} finally {
  await db.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
  await db.close();
  await deleteKeys();
}
