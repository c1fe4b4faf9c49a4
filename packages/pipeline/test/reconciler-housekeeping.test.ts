/**
 * The reconciler's housekeeping against real Postgres, Redis and Spark: runs left `running` by a process
 * that stopped are closed, submission records past their retention are deleted, and batches it resolves are
 * announced as their writer would have announced them.
 */
import {
  beginPublish,
  claimFiles,
  findSubmissionRequest,
  finishRun,
  getRun,
  listFiles,
  openBatch,
  recordSubmissionRequest,
  registerFiles,
  RUN_ABANDONED,
  startRun,
  type FileRecord,
  type Ingestion,
  type Run,
  type RunTrigger,
} from "@lakeferry/db";
import { ingestJobId } from "@lakeferry/queue";
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import {
  discoverFiles,
  PipelineEvents,
  Reconciler,
  resolveBatch,
  type BatchFinishedEvent,
  type FileSettledEvent,
  type ReconcilerOptions,
} from "../src/index.ts";
import { createWorld, eventually, jsonRows, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await world?.close();
  world = undefined;
});

function reconciler(w: TestWorld, options: Partial<ReconcilerOptions> = {}): Reconciler {
  const r = new Reconciler({ db: w.db, queue: w.queue, writer: w.writer, logger: w.logger, ...options });
  closers.push(() => r.close());
  return r;
}

/** A run started `ageMs` ago (by the database clock), as a process that is gone would have left it. */
async function runStartedAgo(
  w: TestWorld,
  ingestion: Ingestion,
  trigger: RunTrigger,
  ageMs: number,
): Promise<Run> {
  const run = await startRun(w.db, { ingestionId: ingestion.id, trigger });
  await w.db.pool.query(
    `UPDATE runs SET started_at = now() - $2::float8 * interval '1 millisecond' WHERE id = $1`,
    [run.id, ageMs],
  );
  return run;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

describe("Reconciler: runs left running", () => {
  it("closes a submission's or discovery's run whose process stopped, and leaves live and finished runs alone", async () => {
    const w = (world = await createWorld());
    const ingestion = await w.ingestion();
    // A submission that registered two files (one new, one a new version) and died before finishing its run.
    const dead = await runStartedAgo(w, ingestion, "upstream", 20 * MINUTE);
    const at = new Date("2026-11-01T00:00:00Z");
    const listed = (etag: string) => [
      { uri: `file://${w.dir}/a.json`, size: 10, etag, modifiedAt: at },
      { uri: `file://${w.dir}/b.json`, size: 10, etag: "b1", modifiedAt: at },
    ];
    const earlier = await startRun(w.db, { ingestionId: ingestion.id, trigger: "manual" });
    const first = listed("a1").slice(0, 1);
    await registerFiles(w.db, {
      ingestionId: ingestion.id,
      runId: earlier.id,
      files: first,
      modifiedPolicy: "append",
    });
    await finishRun(w.db, earlier.id, { filesFound: 1, filesNew: 1, filesModified: 0 });
    const { created, modified } = await registerFiles(w.db, {
      ingestionId: ingestion.id,
      runId: dead.id,
      files: listed("a2"),
      modifiedPolicy: "append",
    });
    expect([created.length, modified.length]).toEqual([1, 1]);
    // A submission under way, a discovery of a large source under way, one that died a day ago, and a
    // submission that finished long ago.
    const live = await runStartedAgo(w, ingestion, "upstream", MINUTE);
    const longDiscovery = await runStartedAgo(w, ingestion, "schedule", 3 * HOUR);
    const deadDiscovery = await runStartedAgo(w, ingestion, "manual", 25 * HOUR);
    const finished = await runStartedAgo(w, ingestion, "upstream", 2 * HOUR);
    await finishRun(w.db, finished.id, { filesFound: 0, filesNew: 0, filesModified: 0 });

    const r = reconciler(w, { pendingGraceMs: 0 });
    const pass = await r.runOnce();
    expect(pass).toMatchObject({ active: true, runsAbandoned: 2 });
    const abandoned = {
      status: "failed",
      errorType: RUN_ABANDONED,
      errorMessage:
        "abandoned: its process stopped before finishing; files it registered are queued as usual",
    };
    const closed = await getRun(w.db, dead.id);
    expect(closed).toMatchObject({ ...abandoned, filesNew: 1, filesModified: 1, filesFound: 2 });
    expect(closed?.finishedAt).toBeInstanceOf(Date);
    expect(await getRun(w.db, deadDiscovery.id)).toMatchObject({ ...abandoned, filesNew: 0 });
    expect((await getRun(w.db, live.id))?.status).toBe("running");
    expect((await getRun(w.db, longDiscovery.id))?.status).toBe("running");
    expect(await getRun(w.db, finished.id)).toMatchObject({ status: "succeeded", errorType: null });
    // Its files were registered without jobs (it died before enqueueing them): the same pass queued them.
    const files = [...created, ...modified];
    const jobs = await w.queue.liveJobIds(
      files.map((f) => ingestJobId({ fileId: f.id, version: f.version })),
    );
    expect(jobs.size).toBe(2);

    expect(await r.runOnce()).toMatchObject({ runsAbandoned: 0 });
    // A process that was only slow and finishes after all records its own outcome.
    await finishRun(w.db, dead.id, { filesFound: 2, filesNew: 1, filesModified: 1 });
    expect(await getRun(w.db, dead.id)).toMatchObject({ status: "succeeded", errorType: null });
  });

  it("judges submissions and discoveries by their own age limits", async () => {
    const w = (world = await createWorld());
    const ingestion = await w.ingestion();
    const submission = await runStartedAgo(w, ingestion, "upstream", 3_000);
    const discovery = await runStartedAgo(w, ingestion, "schedule", 3_000);
    const r = reconciler(w, { upstreamRunTimeoutMs: 2_000, discoveryRunTimeoutMs: 10_000 });
    expect(await r.runOnce()).toMatchObject({ runsAbandoned: 1 });
    expect((await getRun(w.db, submission.id))?.status).toBe("failed");
    expect((await getRun(w.db, discovery.id))?.status).toBe("running");
    expect(() => reconciler(w, { upstreamRunTimeoutMs: 0 })).toThrow(/upstreamRunTimeoutMs/);
  });
});

describe("Reconciler: submission records", () => {
  it("deletes records past their retention, however many, and keeps the others replaying", async () => {
    const w = (world = await createWorld());
    const ingestion = await w.ingestion();
    const response = { status: 202, body: { accepted: 1 } };
    // 2,500 records from eight days ago (more than one chunk), and three of this hour.
    await w.db.pool.query(
      `INSERT INTO submission_requests (ingestion_id, request_id, request_hash, response, created_at)
       SELECT $1, 'old-' || n, 'h', '{}'::jsonb, now() - interval '8 days' - n * interval '1 second'
       FROM generate_series(1, 2500) AS n`,
      [ingestion.id],
    );
    for (const requestId of ["new-1", "new-2", "new-3"]) {
      await recordSubmissionRequest(w.db, {
        ingestionId: ingestion.id,
        requestId,
        requestHash: "h",
        runId: null,
        response,
      });
    }
    const r = reconciler(w);
    expect(await r.runOnce()).toMatchObject({ submissionRequestsPruned: 2_500 });
    expect(await findSubmissionRequest(w.db, ingestion.id, "old-1")).toBeUndefined();
    expect(await findSubmissionRequest(w.db, ingestion.id, "new-2")).toMatchObject({ response });
    const { rows } = await w.db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM submission_requests`,
    );
    expect(rows[0]?.n).toBe(3);
    expect(await r.runOnce()).toMatchObject({ submissionRequestsPruned: 0 });

    // A shorter retention, as an option.
    await w.db.pool.query(`UPDATE submission_requests SET created_at = now() - interval '2 hours'
                           WHERE request_id = 'new-1'`);
    const short = reconciler(w, { holder: "short", submissionRetentionMs: HOUR });
    await r.close();
    expect(await short.runOnce()).toMatchObject({ active: true, submissionRequestsPruned: 1 });
    expect(await findSubmissionRequest(w.db, ingestion.id, "new-1")).toBeUndefined();
  });
});

describe("Reconciler: batches it resolves are announced", () => {
  it("announces a dead writer's decided batch as committed with its files, and an undecided one as abandoned", async () => {
    const w = (world = await createWorld());
    await w.file("a.json", jsonRows(0, 3));
    await w.file("b.json", jsonRows(10, 2));
    const ingestion = await w.ingestion();
    await discoverFiles(w, ingestion);
    await w.queue.drainAll();
    const [fileA, fileB] = await listFiles(w.db, ingestion.id);
    if (!fileA || !fileB) throw new Error("files not registered");
    // Writer a died after deciding its batch (PUBLISHING, not published); writer b before deciding (OPEN).
    const { batchId: decided, stagedSnapshotId } = await stagedByDeadWriter(w, ingestion.id, fileA);
    expect(
      await beginPublish(w.db, {
        batchId: decided,
        worker: `dead-${fileA.id}`,
        stagedSnapshotId,
        records: [{ fileId: fileA.id, records: 3 }],
        publishLeaseMs: 1,
      }),
    ).toBe(true);
    const { batchId: undecided } = await stagedByDeadWriter(w, ingestion.id, fileB);

    const events = new PipelineEvents();
    const settled: FileSettledEvent[] = [];
    const batches: BatchFinishedEvent[] = [];
    events.on("file:settled", (event) => settled.push(event));
    events.on("batch:finished", (event) => batches.push(event));
    const r = reconciler(w, { events, batchGraceMs: 0 });
    await eventually(
      "both batches resolved",
      async () => {
        await r.runOnce();
        return batches.length === 2 ? true : undefined;
      },
      60_000,
    );
    expect(settled).toEqual([
      {
        ingestion: "orders",
        fileId: fileA.id,
        status: "SUCCESS",
        durationSeconds: 0,
        bytes: fileA.fileSize,
        records: 3,
        recovered: true,
      },
    ]);
    const common = { ingestion: "orders", durationSeconds: 0, files: 1, recovered: true };
    expect(batches.sort((x, y) => x.outcome.localeCompare(y.outcome))).toEqual([
      { ...common, batchId: undecided, outcome: "abandoned", bytes: fileB.fileSize, records: 0 },
      { ...common, batchId: decided, outcome: "committed", bytes: fileA.fileSize, records: 3 },
    ]);
    // Nothing is announced twice: later passes find nothing to resolve.
    await r.runOnce();
    expect(batches).toHaveLength(2);
    // A batch listed as unresolved but settled by its writer before the reconciler got to it is the
    // writer's to announce: resolving it again says it was settled elsewhere.
    for (const [batchId, resolution] of [
      [decided, "committed"],
      [undecided, "abandoned"],
    ] as const) {
      expect(await resolveBatch(w.db, w.writer, batchId, { skipLive: true, logger: w.logger })).toEqual({
        resolution,
        settledHere: false,
      });
    }
  });
});

/** A writer that claimed `file`, opened a batch and staged it in Iceberg, then died (its lease ran out). */
async function stagedByDeadWriter(
  w: TestWorld,
  ingestionId: number,
  file: FileRecord,
): Promise<{ batchId: string; stagedSnapshotId: string }> {
  const worker = `dead-${file.id}`;
  await claimFiles(w.db, { refs: [{ id: file.id, version: 1 }], worker, leaseMs: 1 });
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
  return { batchId, stagedSnapshotId: staged.stagedSnapshotId };
}
