import { LakeferryError } from "@lakeferry/core";
import {
  beginPublish,
  claimFiles,
  fileHistory,
  listFiles,
  openBatch,
  recordOutcomes,
  statusCounts,
  type FileRecord,
} from "@lakeferry/db";
import type { PublishOutcome, StagedWrite, WriteBatch } from "@lakeferry/iceberg";
import type { ExecutionOptions } from "@lakeferry/spark-connect";
import { ingestJobId, IngestWorker } from "@lakeferry/queue";
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { discoverFiles, enqueueFiles, FileIngestor, Reconciler, type BatchWriter } from "../src/index.ts";
import {
  createWorld,
  env,
  eventually,
  jsonRows,
  rowsPerFile,
  snapshotsOf,
  type TestWorld,
} from "./support.ts";

let world: TestWorld | undefined;
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await world?.close();
  world = undefined;
});

const jobIds = (files: { id: number; version: number }[]): string[] =>
  files.map((file) => ingestJobId({ fileId: file.id, version: file.version }));

async function allSettled(w: TestWorld, ingestionId: number, count: number): Promise<FileRecord[]> {
  return eventually(`${count} settled files`, async () => {
    const files = await listFiles(w.db, ingestionId);
    const settled = files.filter((file) => file.status === "SUCCESS" || file.status === "FAILED");
    return settled.length === count ? files : undefined;
  });
}

describe("Reconciler", () => {
  it("re-enqueues PENDING files whose jobs Redis lost and reclaims expired leases; nothing is lost", async () => {
    const w = (world = await createWorld());
    for (let i = 0; i < 4; i++) await w.file(`f${i}.json`, jsonRows(i * 10, 2));
    const ingestion = await w.ingestion();
    const run = await discoverFiles(w, ingestion);
    expect(run.enqueued).toBe(4);
    const files = await listFiles(w.db, ingestion.id);
    expect((await w.queue.liveJobIds(jobIds(files))).size).toBe(4);

    // A worker claimed one file and died; then Redis lost every job of this queue.
    const [dead] = files;
    await claimFiles(w.db, { refs: [{ id: dead?.id ?? 0, version: 1 }], worker: "dead-worker", leaseMs: 1 });
    await w.queue.drainAll();
    expect((await w.queue.liveJobIds(jobIds(files))).size).toBe(0);

    const reconciler = new Reconciler({
      db: w.db,
      queue: w.queue,
      writer: w.writer,
      logger: w.logger,
      pendingGraceMs: 0,
    });
    await eventually("the lease to expire", async () =>
      (await reconciler.runOnce()).reclaimed === 1 ? true : undefined,
    );
    expect((await w.queue.liveJobIds(jobIds(files))).size).toBe(4);
    expect(await reconciler.runOnce()).toMatchObject({ requeued: 0, reclaimed: 0, batchesResolved: 0 });
    const attempts = await fileHistory(w.db, dead?.id ?? 0);
    expect(attempts.attempts).toMatchObject([{ worker: "dead-worker", outcome: "LOST" }]);

    await w.worker();
    const settled = await allSettled(w, ingestion.id, 4);
    expect(settled.every((file) => file.status === "SUCCESS")).toBe(true);
    expect(Object.values(await rowsPerFile(w.spark, w.table()))).toEqual([2, 2, 2, 2]);
  });

  /** A file claimed by a worker that then opened a batch for it and staged it in Iceberg, and died. */
  async function stagedByCrashedWriter(
    w: TestWorld,
    ingestionId: number,
    file: FileRecord,
  ): Promise<{ batchId: string; worker: string; staged: StagedWrite }> {
    const worker = `crashed-${file.id}`;
    await claimFiles(w.db, { refs: [{ id: file.id, version: 1 }], worker, leaseMs: 1_000 });
    const batchId = randomUUID();
    const ingestedAtMicros = BigInt(Date.now()) * 1000n + BigInt(file.id % 1000);
    await openBatch(w.db, {
      batchId,
      ingestionId,
      table: w.table(),
      worker,
      files: [{ id: file.id, version: 1 }],
      ingestedAtMicros,
    });
    const staged = await w.writer.stage({
      batchId,
      table: w.table(),
      format: "json",
      schema: "id BIGINT, v STRING",
      files: [file.filePath],
      ingestedAtMicros,
    });
    return { batchId, worker, staged };
  }

  it("abandons a batch staged by a writer that died before deciding; its staged rows never become visible", async () => {
    const w = (world = await createWorld());
    const a = await w.file("a.json", jsonRows(0, 3));
    const ingestion = await w.ingestion();
    await discoverFiles(w, ingestion);
    await w.queue.drainAll();
    const [fileA] = await listFiles(w.db, ingestion.id);
    if (!fileA) throw new Error("file not registered");
    const crashed = await stagedByCrashedWriter(w, ingestion.id, fileA);
    expect(await rowsPerFile(w.spark, w.table())).toEqual({});

    const reconciler = new Reconciler({
      db: w.db,
      queue: w.queue,
      writer: w.writer,
      logger: w.logger,
      batchGraceMs: 0,
    });
    await eventually("the batch abandoned and the file handed back", async () => {
      const result = await reconciler.runOnce();
      return result.batchesResolved + result.reclaimed > 0 &&
        (await statusCounts(w.db, ingestion.id)).PENDING === 1
        ? true
        : undefined;
    });
    await w.worker();
    await enqueueFiles(w.queue, ingestion, [fileA]);
    const [settled] = await allSettled(w, ingestion.id, 1);
    expect(settled).toMatchObject({ status: "SUCCESS", recordsIngested: 3 });
    expect(await rowsPerFile(w.spark, w.table())).toEqual({ [a]: 3 });
    // The crashed writer's staged snapshot can no longer be published by anyone: Postgres gave it up.
    const batch = await w.db.prisma.writeBatch.findUnique({ where: { id: crashed.batchId } });
    expect(batch?.state).toBe("ABANDONED");
    expect(
      await beginPublish(w.db, {
        batchId: crashed.batchId,
        worker: crashed.worker,
        stagedSnapshotId: crashed.staged.stagedSnapshotId,
        records: [{ fileId: fileA.id, records: 3 }],
        publishLeaseMs: 60_000,
      }),
    ).toBe(false);
    expect(await rowsPerFile(w.spark, w.table())).toEqual({ [a]: 3 });
  });

  for (const expired of [false, true]) {
    it(`publishes a batch decided by a writer that died before publishing${expired ? ", or finds it published once maintenance expired every old snapshot" : ""}; never twice`, async () => {
      const w = (world = await createWorld());
      const a = await w.file("a.json", jsonRows(0, 3));
      const b = await w.file("b.json", jsonRows(10, 2));
      const ingestion = await w.ingestion();
      await discoverFiles(w, ingestion);
      await w.queue.drainAll();
      const [fileA, fileB] = await listFiles(w.db, ingestion.id);
      if (!fileA || !fileB) throw new Error("files not registered");
      // Both writers decided their batch (PUBLISHING); a died before publishing, b after publishing.
      const crashedA = await stagedByCrashedWriter(w, ingestion.id, fileA);
      const crashedB = await stagedByCrashedWriter(w, ingestion.id, fileB);
      for (const [crashed, file, records] of [
        [crashedA, fileA, 3],
        [crashedB, fileB, 2],
      ] as const) {
        expect(
          await beginPublish(w.db, {
            batchId: crashed.batchId,
            worker: crashed.worker,
            stagedSnapshotId: crashed.staged.stagedSnapshotId,
            records: [{ fileId: file.id, records }],
            publishLeaseMs: 1,
          }),
        ).toBe(true);
      }
      expect((await w.writer.publish(w.table(), crashedB.staged.stagedSnapshotId)).kind).toBe("published");
      if (expired) {
        // Later commits, then maintenance that keeps only the current snapshot: b's publish is gone from the
        // history (so is a's staged snapshot: a can no longer be published, and must be written again).
        await w.writer.write({
          batchId: randomUUID(),
          table: w.table(),
          format: "json",
          schema: "id BIGINT, v STRING",
          files: [await w.file("other/c.json", jsonRows(20, 1))],
        });
        const [, namespace, name] = w.table().split(".");
        await w.spark.sqlCommand(
          `CALL lake.system.expire_snapshots(table => '${namespace}.${name}', older_than => TIMESTAMP '2999-01-01 00:00:00', retain_last => 1)`,
        );
      }

      const reconciler = new Reconciler({
        db: w.db,
        queue: w.queue,
        writer: w.writer,
        logger: w.logger,
        batchGraceMs: 0,
      });
      await eventually("both batches resolved", async () => {
        await reconciler.runOnce();
        const batches = await w.db.prisma.writeBatch.findMany({ select: { state: true } });
        return batches.every((batch) => batch.state !== "PUBLISHING" && batch.state !== "OPEN")
          ? true
          : undefined;
      });
      const stateOf = async (id: string) =>
        (await w.db.prisma.writeBatch.findUnique({ where: { id } }))?.state;
      expect(await stateOf(crashedB.batchId)).toBe("COMMITTED");
      expect(await stateOf(crashedA.batchId)).toBe(expired ? "ABANDONED" : "COMMITTED");
      await w.worker();
      await enqueueFiles(w.queue, ingestion, await listFiles(w.db, ingestion.id));
      const files = await allSettled(w, ingestion.id, 2);
      expect(files.map((file) => [file.filePath, file.status, file.recordsIngested])).toEqual([
        [a, "SUCCESS", 3],
        [b, "SUCCESS", 2],
      ]);
      const rows = await rowsPerFile(w.spark, w.table());
      expect(rows[a]).toBe(3);
      expect(rows[b]).toBe(2);
    });
  }
});

/** Passes everything to the real writer; tests override one step. */
class WrappedWriter implements BatchWriter {
  constructor(protected readonly inner: BatchWriter) {}

  stage(batch: WriteBatch, options?: ExecutionOptions): Promise<StagedWrite> {
    return this.inner.stage(batch, options);
  }

  publish(table: string, stagedSnapshotId: string, options?: ExecutionOptions): Promise<PublishOutcome> {
    return this.inner.publish(table, stagedSnapshotId, options);
  }

  hasBatchRows(
    table: string,
    micros: bigint,
    files: readonly string[],
    options?: ExecutionOptions,
  ): Promise<boolean> {
    return this.inner.hasBatchRows(table, micros, files, options);
  }
}

/** An ingest worker in this process over `writer`, closed after the test. */
async function ingestWith(
  w: TestWorld,
  writer: BatchWriter,
  options: { workerId?: string; leaseMs?: number; maxWaitMs?: number } = {},
): Promise<FileIngestor> {
  const ingestor = new FileIngestor({
    db: w.db,
    writer,
    workerId: options.workerId ?? "test-worker",
    logger: w.logger,
    // A stuck write lets the next write of its table start after 2 s (here and in the fleet).
    batch: { maxWaitMs: options.maxWaitMs ?? 100, slowWriteMs: 2_000 },
    ...(options.leaseMs ? { leaseMs: options.leaseMs } : {}),
  });
  const worker = new IngestWorker({
    redisUrl: env.redisUrl,
    prefix: w.prefix,
    concurrency: 10,
    process: (job) => ingestor.process(job),
    minOutagePauseMs: 100,
    maxOutagePauseMs: 400,
  });
  await worker.start();
  closers.push(async () => {
    await worker.close({ timeoutMs: 5_000 });
    await ingestor.close();
  });
  return ingestor;
}

const outcomesOf = async (w: TestWorld, id: number): Promise<string[]> =>
  (await fileHistory(w.db, id)).attempts.map((attempt) => (attempt as { outcome: string }).outcome);

describe("The commit fence", () => {
  it("a write the client gave up on that still lands on the server is never published (dropped stream)", async () => {
    const w = (world = await createWorld());
    const a = await w.file("a.json", jsonRows(0, 3));
    const ingestion = await w.ingestion({ retry: { attempts: 3, backoffMs: 100 } });
    const late: Promise<StagedWrite>[] = [];
    class DroppedStream extends WrappedWriter {
      drops = 1;
      override stage(batch: WriteBatch, options?: ExecutionOptions): Promise<StagedWrite> {
        if (this.drops-- <= 0) return super.stage(batch, options);
        // The stream drops at once; the operation runs on in Spark and lands after the retry was written.
        late.push(new Promise((resolve) => setTimeout(resolve, 1_500)).then(() => super.stage(batch)));
        return Promise.reject(
          new LakeferryError("SPARK_EXECUTION", "stream reset (injected)", { retryable: true }),
        );
      }
    }
    await ingestWith(w, new DroppedStream(w.writer));
    await discoverFiles(w, ingestion);
    const [settled] = await allSettled(w, ingestion.id, 1);
    expect(settled).toMatchObject({ status: "SUCCESS", recordsIngested: 3, retryCount: 1 });
    const lateWrite = await late[0];
    expect(lateWrite?.records.get(a)).toBe(3); // it did land, staged
    expect(await rowsPerFile(w.spark, w.table())).toEqual({ [a]: 3 });
    expect(await snapshotsOf(w.spark, w.table())).toHaveLength(1);
  });

  it("a writer that lost its files' leases while writing cannot publish; the files are written once, elsewhere", async () => {
    const w = (world = await createWorld());
    const a = await w.file("a.json", jsonRows(0, 2));
    const ingestion = await w.ingestion();
    let release: () => void = () => {};
    const paused = new Promise<void>((resolve) => (release = resolve));
    let staged = false;
    let pausedBatch = "";
    class PausedWriter extends WrappedWriter {
      override async stage(batch: WriteBatch, options?: ExecutionOptions): Promise<StagedWrite> {
        const result = await super.stage(batch, options);
        if (staged) return result; // only the first write pauses
        staged = true;
        pausedBatch = batch.batchId;
        await paused; // a long GC pause, or cut off from Postgres: the lease is not renewed meanwhile
        return result;
      }
    }
    await ingestWith(w, new PausedWriter(w.writer), { workerId: "paused", leaseMs: 60_000 });
    try {
      await discoverFiles(w, ingestion);
      await eventually("the staged write", async () => (staged ? true : undefined));
      // The paused worker's lease runs out and another worker takes the file over (and hands it to a third,
      // which writes it).
      const [file] = await listFiles(w.db, ingestion.id);
      if (!file) throw new Error("no file");
      await w.db.pool.query(
        `UPDATE ${w.schema}.processed_files SET lease_expires_at = now() - interval '1 second' WHERE id = $1`,
        [file.id],
      );
      const [taken] = await claimFiles(w.db, {
        refs: [{ id: file.id, version: 1 }],
        worker: "thief",
        leaseMs: 60_000,
      });
      expect(taken?.previousBatchId).not.toBeNull();
      await recordOutcomes(w.db, {
        worker: "thief",
        outcomes: [{ id: file.id, version: 1, status: "PENDING", counted: false, errorMessage: "handed on" }],
      });
      await w.worker();
      await w.queue.drainAll();
      await enqueueFiles(w.queue, ingestion, [file]);
      await eventually("written by another worker", async () =>
        (await listFiles(w.db, ingestion.id))[0]?.status === "SUCCESS" ? true : undefined,
      );
    } finally {
      release();
    }
    await eventually("the paused writer fenced off", async () => {
      const batch = await w.db.prisma.writeBatch.findUnique({ where: { id: pausedBatch } });
      return batch?.state === "ABANDONED" ? true : undefined;
    });
    // Whoever wrote the file (the third worker, or the paused one again on a new job): its rows once.
    const states = await w.db.prisma.writeBatch.findMany({ select: { state: true } });
    expect(states.map((batch) => batch.state).sort()).toEqual(["ABANDONED", "COMMITTED"]);
    expect(await rowsPerFile(w.spark, w.table())).toEqual({ [a]: 2 });
    expect(await snapshotsOf(w.spark, w.table())).toHaveLength(1);
  });

  it("a failure after the batch was decided neither splits nor fails it: it is published once, by recovery", async () => {
    const w = (world = await createWorld());
    const a = await w.file("a.json", jsonRows(0, 3));
    const b = await w.file("b.json", jsonRows(10, 2));
    const ingestion = await w.ingestion({ retry: { attempts: 2, backoffMs: 100 } });
    class PublishFails extends WrappedWriter {
      failures = 1;
      override publish(table: string, id: string, options?: ExecutionOptions): Promise<PublishOutcome> {
        if (this.failures-- > 0) {
          return Promise.reject(
            new LakeferryError(
              "ICEBERG_UNEXPECTED_RESULT",
              "a permanent-looking error after the decision (injected)",
              {
                retryable: false,
              },
            ),
          );
        }
        return super.publish(table, id, options);
      }
    }
    const writer = new PublishFails(w.writer);
    await ingestWith(w, writer, { leaseMs: 1_000, maxWaitMs: 300 });
    await discoverFiles(w, ingestion);
    const reconciler = new Reconciler({
      db: w.db,
      queue: w.queue,
      writer,
      logger: w.logger,
      batchGraceMs: 0,
      pendingGraceMs: 0,
    });
    const files = await eventually("both files settled", async () => {
      await reconciler.runOnce();
      const listed = await listFiles(w.db, ingestion.id);
      return listed.every((file) => file.status === "SUCCESS" || file.status === "FAILED")
        ? listed
        : undefined;
    });
    expect(files.map((file) => [file.status, file.recordsIngested])).toEqual([
      ["SUCCESS", 3],
      ["SUCCESS", 2],
    ]);
    expect(await rowsPerFile(w.spark, w.table())).toEqual({ [a]: 3, [b]: 2 });
    const batches = await w.db.prisma.writeBatch.findMany({ select: { state: true } });
    expect(batches.map((batch) => batch.state)).toEqual(["COMMITTED"]);
  });
});

describe("FileIngestor retries", () => {
  /** Fails the first `failures` stagings of a table with `error`. */
  class FlakyWriter extends WrappedWriter {
    readonly failures = new Map<string, number>();
    constructor(
      inner: BatchWriter,
      private readonly error: () => Error,
    ) {
      super(inner);
    }

    override stage(batch: WriteBatch, options?: ExecutionOptions): Promise<StagedWrite> {
      const left = this.failures.get(batch.table) ?? 0;
      if (left > 0) {
        this.failures.set(batch.table, left - 1);
        return Promise.reject(this.error());
      }
      return super.stage(batch, options);
    }
  }

  it("retries a transient failure with backoff until the file lands, and gives up after the last attempt", async () => {
    const w = (world = await createWorld());
    const flaky = await w.file("flaky/x.json", jsonRows(0, 2));
    await w.file("doomed/y.json", jsonRows(10, 2));
    const recovering = await w.ingestion({
      name: "recovering",
      source: `file://${w.dir}/flaky/`,
      retry: { attempts: 3, backoffMs: 300 },
    });
    const doomedTable = w.table("doomed");
    const doomed = await w.ingestion({
      name: "doomed",
      source: `file://${w.dir}/doomed/`,
      table: doomedTable,
      retry: { attempts: 2, backoffMs: 100 },
    });
    const writer = new FlakyWriter(
      w.writer,
      () => new LakeferryError("SPARK_EXECUTION", "executor lost (injected)", { retryable: true }),
    );
    writer.failures.set(w.table(), 1);
    writer.failures.set(doomedTable, 1_000);
    const ingestor = new FileIngestor({
      db: w.db,
      writer,
      workerId: "flaky-worker",
      logger: w.logger,
      batch: { maxWaitMs: 50 },
    });
    const worker = new IngestWorker({
      redisUrl: env.redisUrl,
      prefix: w.prefix,
      concurrency: 10,
      process: (job) => ingestor.process(job),
    });
    await worker.start();
    closers.push(async () => {
      await worker.close({ timeoutMs: 5_000 });
      await ingestor.close();
    });

    await discoverFiles(w, recovering);
    await discoverFiles(w, doomed);
    const [landed] = await allSettled(w, recovering.id, 1);
    expect(landed).toMatchObject({
      filePath: flaky,
      status: "SUCCESS",
      attempts: 2,
      retryCount: 1,
      recordsIngested: 2,
    });
    const [failed] = await allSettled(w, doomed.id, 1);
    expect(failed).toMatchObject({
      status: "FAILED",
      attempts: 2,
      retryCount: 2,
      errorType: "SPARK_EXECUTION",
    });

    const outcomes = async (id: number): Promise<string[]> =>
      (await fileHistory(w.db, id)).attempts.map((attempt) => (attempt as { outcome: string }).outcome);
    expect(await outcomes(landed?.id ?? 0)).toEqual(["RETRY", "SUCCESS"]);
    expect(await outcomes(failed?.id ?? 0)).toEqual(["RETRY", "FAILED"]);
    expect(await rowsPerFile(w.spark, w.table())).toEqual({ [flaky]: 2 });
  });

  it("an outage spends no attempt: with 2 attempts, a file survives 4 outage failures and lands", async () => {
    const w = (world = await createWorld());
    const a = await w.file("a.json", jsonRows(0, 2));
    const ingestion = await w.ingestion({ retry: { attempts: 2, backoffMs: 100 } });
    const writer = new FlakyWriter(
      w.writer,
      () =>
        new LakeferryError("SPARK_UNAVAILABLE", "Spark is down (injected)", {
          retryable: true,
          outage: "spark",
        }),
    );
    writer.failures.set(w.table(), 4);
    await ingestWith(w, writer);
    await discoverFiles(w, ingestion);
    const [landed] = await allSettled(w, ingestion.id, 1);
    expect(landed).toMatchObject({ status: "SUCCESS", retryCount: 0, attempts: 5, recordsIngested: 2 });
    expect(await outcomesOf(w, landed?.id ?? 0)).toEqual(["RETRY", "RETRY", "RETRY", "RETRY", "SUCCESS"]);
    const counted = await w.db.pool.query<{ counted: boolean }>(
      `SELECT counted FROM ${w.schema}.file_attempts WHERE file_id = $1 ORDER BY attempt`,
      [landed?.id ?? 0],
    );
    expect(counted.rows.map((row) => row.counted)).toEqual([false, false, false, false, true]);
    expect(await rowsPerFile(w.spark, w.table())).toEqual({ [a]: 2 });
  });

  it("keeps the lease alive while a write runs longer than the lease, so nobody else can claim the file", async () => {
    const w = (world = await createWorld());
    await w.file("slow.json", jsonRows(0, 1));
    const ingestion = await w.ingestion();
    let writing = false;
    class SlowWriter extends WrappedWriter {
      override async stage(batch: WriteBatch): Promise<StagedWrite> {
        writing = true;
        await new Promise((resolve) => setTimeout(resolve, 2_500));
        return {
          stagedSnapshotId: "42",
          records: new Map(batch.files.map((file) => [file, 1])),
          ingestedAtMicros: 1n,
        };
      }

      override async publish(_table: string, id: string): Promise<PublishOutcome> {
        return { kind: "published", snapshotId: id };
      }
    }
    const slowWriter = new SlowWriter(w.writer);
    const ingestor = new FileIngestor({
      db: w.db,
      writer: slowWriter,
      workerId: "slow-worker",
      leaseMs: 600,
      logger: w.logger,
    });
    const worker = new IngestWorker({
      redisUrl: env.redisUrl,
      prefix: w.prefix,
      concurrency: 5,
      process: (job) => ingestor.process(job),
    });
    await worker.start();
    closers.push(async () => {
      await worker.close({ timeoutMs: 5_000 });
      await ingestor.close();
    });

    await discoverFiles(w, ingestion);
    await eventually("the write to start", async () => (writing ? true : undefined));
    const [file] = await listFiles(w.db, ingestion.id);
    // Four lease lengths into the write, the lease still holds.
    for (let i = 0; i < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(
        await claimFiles(w.db, {
          refs: [{ id: file?.id ?? 0, version: 1 }],
          worker: "thief",
          leaseMs: 60_000,
        }),
      ).toEqual([]);
    }
    const [done] = await allSettled(w, ingestion.id, 1);
    expect(done).toMatchObject({ status: "SUCCESS", attempts: 1, snapshotId: "42", recordsIngested: 1 });
  });
});
