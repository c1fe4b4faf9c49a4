import { LakeferryError } from "@lakeferry/core";
import { claimFiles, fileHistory, listFiles, openBatch, statusCounts, type FileRecord } from "@lakeferry/db";
import type { WriteBatch, WriteResult } from "@lakeferry/iceberg";
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
    expect(await reconciler.runOnce()).toEqual({ requeued: 0, reclaimed: 0, batchesResolved: 0 });
    const attempts = await fileHistory(w.db, dead?.id ?? 0);
    expect(attempts.attempts).toMatchObject([{ worker: "dead-worker", outcome: "LOST" }]);

    await w.worker();
    const settled = await allSettled(w, ingestion.id, 4);
    expect(settled.every((file) => file.status === "SUCCESS")).toBe(true);
    expect(Object.values(await rowsPerFile(w.spark, w.table()))).toEqual([2, 2, 2, 2]);
  });

  it("records a batch committed before its writer died from the table's snapshots, never writing it twice", async () => {
    const w = (world = await createWorld());
    const a = await w.file("a.json", jsonRows(0, 3));
    const b = await w.file("b.json", jsonRows(10, 2));
    const ingestion = await w.ingestion();
    await discoverFiles(w, ingestion);
    await w.queue.drainAll();
    const [fileA, fileB] = await listFiles(w.db, ingestion.id);
    if (!fileA || !fileB) throw new Error("files not registered");

    // Two writers each claimed a file, opened a batch, committed it to Iceberg and died before recording it.
    const crashed = new Map<string, string>();
    for (const file of [fileA, fileB]) {
      const worker = `crashed-${file.id}`;
      await claimFiles(w.db, { refs: [{ id: file.id, version: 1 }], worker, leaseMs: 1 });
      const batchId = randomUUID();
      await openBatch(w.db, {
        batchId,
        ingestionId: ingestion.id,
        table: w.table(),
        worker,
        files: [{ id: file.id, version: 1 }],
      });
      await w.writer.write({
        batchId,
        table: w.table(),
        format: "json",
        schema: "id BIGINT, v STRING",
        files: [file.filePath],
      });
      crashed.set(file.filePath, batchId);
    }
    expect(await statusCounts(w.db, ingestion.id)).toMatchObject({ PROCESSING: 2 });

    // b: the next claimer finds its batch in the snapshots (the worker's reconciler leaves young batches alone).
    await w.worker();
    await enqueueFiles(w.queue, ingestion, [fileB]);
    await eventually("b recorded", async () =>
      (await listFiles(w.db, ingestion.id)).find((f) => f.id === fileB.id && f.status === "SUCCESS"),
    );

    // a: the reconciler resolves the OPEN batch.
    const reconciler = new Reconciler({
      db: w.db,
      queue: w.queue,
      writer: w.writer,
      logger: w.logger,
      batchGraceMs: 0,
    });
    expect(await reconciler.runOnce()).toMatchObject({ batchesResolved: 1, reclaimed: 0 });

    const snapshots = await snapshotsOf(w.spark, w.table());
    expect(snapshots.map((s) => s.batchId).sort()).toEqual([...crashed.values()].sort());
    expect(await rowsPerFile(w.spark, w.table())).toEqual({ [a]: 3, [b]: 2 });
    const files = await listFiles(w.db, ingestion.id);
    for (const file of files) {
      const batchId = crashed.get(file.filePath);
      expect(file).toMatchObject({
        status: "SUCCESS",
        batchId,
        recordsIngested: file.filePath === a ? 3 : 2,
      });
      expect(file.snapshotId).toBe(snapshots.find((s) => s.batchId === batchId)?.snapshotId);
    }
    const batches = await w.db.prisma.writeBatch.findMany({ select: { id: true, state: true } });
    expect(batches.map((batch) => batch.state)).toEqual(["COMMITTED", "COMMITTED"]);
    // b was claimed twice (the crashed attempt, LOST; the recovering one, SUCCESS), written once.
    const history = await fileHistory(w.db, fileB.id);
    expect(history.attempts.map((attempt) => (attempt as { outcome: string }).outcome)).toEqual([
      "LOST",
      "SUCCESS",
    ]);
  });
});

describe("FileIngestor retries", () => {
  /** Wraps the real writer: fails the first `failures` writes of a table retryably, as if Spark were down. */
  class FlakyWriter implements BatchWriter {
    readonly failures = new Map<string, number>();
    constructor(private readonly inner: BatchWriter) {}

    async write(batch: WriteBatch): Promise<WriteResult> {
      const left = this.failures.get(batch.table) ?? 0;
      if (left > 0) {
        this.failures.set(batch.table, left - 1);
        throw new LakeferryError("SPARK_UNAVAILABLE", "Spark is unavailable (injected)", { retryable: true });
      }
      return this.inner.write(batch);
    }

    findCommittedBatch(table: string, batchId: string): Promise<WriteResult | undefined> {
      return this.inner.findCommittedBatch(table, batchId);
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
    const writer = new FlakyWriter(w.writer);
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
      errorType: "SPARK_UNAVAILABLE",
    });

    const outcomes = async (id: number): Promise<string[]> =>
      (await fileHistory(w.db, id)).attempts.map((attempt) => (attempt as { outcome: string }).outcome);
    expect(await outcomes(landed?.id ?? 0)).toEqual(["RETRY", "SUCCESS"]);
    expect(await outcomes(failed?.id ?? 0)).toEqual(["RETRY", "FAILED"]);
    expect(await rowsPerFile(w.spark, w.table())).toEqual({ [flaky]: 2 });
  });

  /** Commits for real, then fails the way a Spark stopping mid-call does: after the commit, retryably. */
  class CommitThenFailWriter implements BatchWriter {
    writesToBreak = 1;
    lookupsToFail = 0;
    writes = 0;
    constructor(private readonly inner: BatchWriter) {}

    async write(batch: WriteBatch): Promise<WriteResult> {
      this.writes += 1;
      const result = await this.inner.write(batch);
      if (this.writesToBreak-- > 0) {
        throw new LakeferryError("SPARK_UNAVAILABLE", "Spark stopped after the commit (injected)", {
          retryable: true,
        });
      }
      return result;
    }

    async findCommittedBatch(table: string, batchId: string): Promise<WriteResult | undefined> {
      if (this.lookupsToFail-- > 0) {
        throw new LakeferryError("SPARK_UNAVAILABLE", "Spark is still down (injected)", { retryable: true });
      }
      return this.inner.findCommittedBatch(table, batchId);
    }
  }

  for (const lookupsToFail of [0, 1]) {
    const when = lookupsToFail === 0 ? "at once" : "on the next attempt, when Spark is back";
    it(`a batch that committed before a transient error is recorded from the table ${when}, never written twice`, async () => {
      const w = (world = await createWorld());
      const a = await w.file("a.json", jsonRows(0, 3));
      const ingestion = await w.ingestion({ retry: { attempts: 3, backoffMs: 200 } });
      const writer = new CommitThenFailWriter(w.writer);
      writer.lookupsToFail = lookupsToFail;
      const ingestor = new FileIngestor({
        db: w.db,
        writer,
        workerId: "commit-then-fail",
        logger: w.logger,
        batch: { maxWaitMs: 200 },
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

      await discoverFiles(w, ingestion);
      const [settled] = await allSettled(w, ingestion.id, 1);
      expect(settled).toMatchObject({ status: "SUCCESS", recordsIngested: 3 });
      expect(writer.writes).toBe(1);
      expect(await rowsPerFile(w.spark, w.table())).toEqual({ [a]: 3 });
      // The attempt that wrote the batch succeeded, whoever found out; a recovering attempt succeeds too.
      const attempts = (await fileHistory(w.db, settled?.id ?? 0)).attempts as { outcome: string }[];
      expect(attempts.map((attempt) => attempt.outcome)).toEqual(
        lookupsToFail === 0 ? ["SUCCESS"] : ["SUCCESS", "SUCCESS"],
      );
      expect(await snapshotsOf(w.spark, w.table())).toHaveLength(1);
    });
  }

  it("keeps the lease alive while a write runs longer than the lease, so nobody else can claim the file", async () => {
    const w = (world = await createWorld());
    await w.file("slow.json", jsonRows(0, 1));
    const ingestion = await w.ingestion();
    let writing = false;
    const slowWriter: BatchWriter = {
      async write(batch) {
        writing = true;
        await new Promise((resolve) => setTimeout(resolve, 2_500));
        return {
          snapshotId: "42",
          committedAt: new Date(),
          records: new Map(batch.files.map((file) => [file, 1])),
          alreadyCommitted: false,
        };
      },
      async findCommittedBatch() {
        return undefined;
      },
    };
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
