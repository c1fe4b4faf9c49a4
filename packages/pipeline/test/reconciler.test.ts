import {
  beginPublish,
  claimFiles,
  listFiles,
  openBatch,
  readBatch,
  registerFiles,
  startRun,
  type FileRef,
  type Ingestion,
} from "@lakeferry/db";
import { DiscoveryQueue, ingestJobId, redisConnection } from "@lakeferry/queue";
import type { ExecutionOptions } from "@lakeferry/spark-connect";
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import {
  DiscovererRuntime,
  enqueueFiles,
  Reconciler,
  type BatchWriter,
  type ReconcilerOptions,
} from "../src/index.ts";
import { createWorld, env, eventually, type TestWorld } from "./support.ts";

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

/** Registers PENDING files f<from>…f<to-1> directly (one statement, no jobs), as a discovery whose enqueue was lost. */
async function registerPending(
  w: TestWorld,
  ingestion: Ingestion,
  from: number,
  to: number,
): Promise<FileRef[]> {
  const run = await startRun(w.db, { ingestionId: ingestion.id, trigger: "manual" });
  const files = Array.from({ length: to - from }, (_, k) => ({
    uri: `file://${w.dir}/f${String(from + k).padStart(6, "0")}.json`,
    size: 10,
    etag: `e${from + k}`,
    modifiedAt: new Date("2026-11-01T00:00:00Z"),
  }));
  const { created } = await registerFiles(w.db, {
    ingestionId: ingestion.id,
    runId: run.id,
    files,
    modifiedPolicy: "ignore",
  });
  return created;
}

const jobIds = (files: FileRef[]): string[] =>
  files.map((file) => ingestJobId({ fileId: file.id, version: file.version }));

/** Deletes every Redis key of this test's prefix at once: FLUSHALL, limited to this test's deployment. */
async function flushRedis(prefix: string): Promise<number> {
  const redis = redisConnection(env.redisUrl);
  try {
    return (await redis.eval(
      "local keys = redis.call('KEYS', ARGV[1]) for i = 1, #keys do redis.call('DEL', keys[i]) end return #keys",
      0,
      `${prefix}:*`,
    )) as number;
  } finally {
    await redis.quit();
  }
}

describe("Reconciler: one active across the fleet", () => {
  it("passes in only the lease holder; another takes over when the holder closes or stops renewing", async () => {
    const w = (world = await createWorld());
    const ingestion = await w.ingestion();
    const files = await registerPending(w, ingestion, 0, 3);
    const a = reconciler(w, { holder: "a", pendingGraceMs: 0 });
    const b = reconciler(w, {
      holder: "b",
      pendingGraceMs: 0,
      intervalMs: 500,
      stepTimeoutMs: 500,
      leaseMs: 1_500,
    });

    expect(await a.runOnce()).toMatchObject({ active: true, sweep: "full", pendingChecked: 3, requeued: 3 });
    expect(await b.runOnce()).toEqual({
      active: false,
      sweep: null,
      pendingChecked: 0,
      requeued: 0,
      reclaimed: 0,
      batchesResolved: 0,
      runsAbandoned: 0,
      submissionRequestsPruned: 0,
    });
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all([a.runOnce(), b.runOnce()]);
      expect(results.map((result) => result.active)).toEqual([true, false]);
    }

    // a closes (releasing the lease): b takes over at its next pass, starting with a full sweep.
    await a.close();
    expect(await b.runOnce()).toMatchObject({ active: true, sweep: "full", pendingChecked: 3, requeued: 0 });
    expect((await w.queue.liveJobIds(jobIds(files))).size).toBe(3);

    // b stops renewing without releasing (a crash): c stands by until b's lease expires, then takes over.
    const c = reconciler(w, { holder: "c", pendingGraceMs: 0 });
    expect((await c.runOnce()).active).toBe(false);
    await eventually(
      "c to take over",
      async () => ((await c.runOnce()).active ? true : undefined),
      10_000,
      100,
    );
    // b finds it lost the lease, and closing b does not release c's.
    expect((await b.runOnce()).active).toBe(false);
    await b.close();
    expect((await c.runOnce()).active).toBe(true);
  });
});

describe("Reconciler: each pass costs what changed", () => {
  it("after a full first sweep, reads only PENDING rows changed since the last pass", async () => {
    const w = (world = await createWorld());
    const ingestion = await w.ingestion();
    await registerPending(w, ingestion, 0, 2_500);
    const r = reconciler(w, { pendingGraceMs: 0, changeOverlapMs: 0 });

    expect(await r.runOnce()).toMatchObject({ sweep: "full", pendingChecked: 2_500, requeued: 2_500 });
    // Nothing changed: nothing read, however many files are PENDING.
    expect(await r.runOnce()).toMatchObject({ sweep: "changes", pendingChecked: 0, requeued: 0 });
    expect(await r.runOnce()).toMatchObject({ sweep: "changes", pendingChecked: 0, requeued: 0 });

    // Three new files, one of which got its job: three read, two enqueued.
    const fresh = await registerPending(w, ingestion, 2_500, 2_503);
    await enqueueFiles(w.queue, ingestion, fresh.slice(0, 1));
    expect(await r.runOnce()).toMatchObject({ sweep: "changes", pendingChecked: 3, requeued: 2 });
    expect((await w.queue.liveJobIds(jobIds(fresh))).size).toBe(3);

    // Many rows changed in one statement (one updated_at) are paged exactly: none skipped, none twice.
    const burst = await registerPending(w, ingestion, 3_000, 5_200);
    expect(await r.runOnce()).toMatchObject({ sweep: "changes", pendingChecked: 2_200, requeued: 2_200 });
    expect((await w.queue.liveJobIds(jobIds(burst))).size).toBe(2_200);
    expect(await r.runOnce()).toMatchObject({ sweep: "changes", pendingChecked: 0, requeued: 0 });
  });

  it("still sweeps everything every fullSweepIntervalMs, for jobs lost while Redis kept its data", async () => {
    const w = (world = await createWorld());
    const ingestion = await w.ingestion();
    const files = await registerPending(w, ingestion, 0, 4);
    const r = reconciler(w, { pendingGraceMs: 0, changeOverlapMs: 0, fullSweepIntervalMs: 1_000 });
    expect(await r.runOnce()).toMatchObject({ sweep: "full", requeued: 4 });

    // Jobs removed without Redis losing its data (the epoch marker stays): a look at changes cannot see it.
    await w.queue.drainAll();
    expect(await r.runOnce()).toMatchObject({ sweep: "changes", pendingChecked: 0, requeued: 0 });
    const full = await eventually(
      "a periodic full sweep",
      async () => {
        const result = await r.runOnce();
        return result.sweep === "full" ? result : undefined;
      },
      10_000,
      100,
    );
    expect(full).toMatchObject({ pendingChecked: 4, requeued: 4 });
    expect((await w.queue.liveJobIds(jobIds(files))).size).toBe(4);
  });
});

describe("Reconciler and discoverer after Redis loses its data", () => {
  it("re-enqueues every PENDING file and restores the discovery schedules within one interval", async () => {
    const w = (world = await createWorld());
    const intervalMs = 1_500;
    const scheduled = await w.ingestion({ name: "scheduled", schedule: "0 3 * * *" });
    await w.ingestion({ name: "disabled", schedule: "0 4 * * *", enabled: false, table: w.table("other") });
    const files = await registerPending(w, scheduled, 0, 50);
    await enqueueFiles(w.queue, scheduled, files);

    const discovery = new DiscoveryQueue({ redisUrl: env.redisUrl, prefix: w.prefix });
    closers.push(() => discovery.close());
    const discoverer = new DiscovererRuntime({
      databaseUrl: env.databaseUrl,
      redisUrl: env.redisUrl,
      queuePrefix: w.prefix,
      dbSchema: w.schema,
      logger: w.logger,
      scheduleCheckIntervalMs: intervalMs,
    });
    closers.push(() => discoverer.close({ timeoutMs: 5_000 }));
    await discoverer.start();
    const schedulesNow = async (): Promise<[number, string][]> =>
      (await discovery.schedules()).map((s) => [s.ingestionId, s.cron]);
    expect(await schedulesNow()).toEqual([[scheduled.id, "0 3 * * *"]]);

    const r = reconciler(w, { intervalMs, pendingGraceMs: 0 });
    expect(await r.runOnce()).toMatchObject({ sweep: "full", pendingChecked: 50, requeued: 0 });
    expect(await r.runOnce()).toMatchObject({ sweep: "changes", requeued: 0 });
    r.start();

    expect(await flushRedis(w.prefix)).toBeGreaterThan(0);
    const flushedAt = Date.now();
    expect((await w.queue.liveJobIds(jobIds(files))).size).toBe(0);
    expect(await schedulesNow()).toEqual([]);

    const restoredAt = await eventually(
      "jobs and schedules back",
      async () => {
        const live = await w.queue.liveJobIds(jobIds(files));
        const schedules = await schedulesNow();
        return live.size === files.length && schedules.length === 1 ? Date.now() : undefined;
      },
      10_000,
      50,
    );
    // One interval (spread by its ±20 % jitter) plus the pass itself.
    expect(restoredAt - flushedAt).toBeLessThan(intervalMs * 1.2 + 1_000);
    expect(await schedulesNow()).toEqual([[scheduled.id, "0 3 * * *"]]);
    // The pass that restored the jobs puts the marker back as it ends, so the passes after it look only at
    // changes again (and requeue nothing: every job is live).
    await eventually(
      "a pass that finds the marker",
      async () => ((await r.runOnce()).sweep === "changes" ? true : undefined),
      10_000,
      50,
    );
    expect(await r.runOnce()).toMatchObject({ sweep: "changes", requeued: 0 });
  });
});

describe("Reconciler: every step under a deadline", () => {
  it("a Spark call that never answers does not stop lease reclaim", async () => {
    const w = (world = await createWorld());
    const ingestion = await w.ingestion();
    const [stuck, slow] = await registerPending(w, ingestion, 0, 2);
    if (!stuck || !slow) throw new Error("files not registered");

    // A writer that died after deciding its batch: PUBLISHING, its publish window over, so recovery asks
    // Spark about it, and Spark never answers.
    await claimFiles(w.db, { refs: [stuck], worker: "dead", leaseMs: 60_000 });
    const batchId = randomUUID();
    await openBatch(w.db, {
      batchId,
      ingestionId: ingestion.id,
      table: w.table(),
      worker: "dead",
      files: [stuck],
      ingestedAtMicros: 1n,
    });
    expect(
      await beginPublish(w.db, {
        batchId,
        worker: "dead",
        stagedSnapshotId: "1",
        records: [{ fileId: stuck.id, records: 1 }],
        publishLeaseMs: 1,
      }),
    ).toBe(true);
    // Another worker holds a file whose lease expires only after the first pass.
    await claimFiles(w.db, { refs: [slow], worker: "slow", leaseMs: 1_500 });

    const hung = hungWriter();
    const r = reconciler(w, {
      writer: hung.writer,
      intervalMs: 300,
      stepTimeoutMs: 400,
      batchGraceMs: 0,
      pendingGraceMs: 0,
    });
    r.start();
    await eventually(
      "the slow file reclaimed and enqueued",
      async () => {
        const file = (await listFiles(w.db, ingestion.id)).find((f) => f.id === slow.id);
        const live = await w.queue.liveJobIds(jobIds([slow]));
        return file?.status === "PENDING" && live.size === 1 ? true : undefined;
      },
      15_000,
      100,
    );
    // The hung lookups were cut off by their deadline (and told so through their signal), more than once
    // (on a loaded machine the second pass may start only after the reclaim was seen).
    await eventually(
      "a second hung lookup",
      async () => (hung.calls.length >= 2 ? true : undefined),
      5_000,
      50,
    );
    expect(hung.aborted).toBe(hung.calls.length - (hung.pending() ? 1 : 0));
    // A deadline decides nothing: the batch waits, its file with it.
    expect((await readBatch(w.db, batchId))?.state).toBe("PUBLISHING");
    expect((await listFiles(w.db, ingestion.id)).find((f) => f.id === stuck.id)?.status).toBe("PROCESSING");

    const closing = Date.now();
    await r.close();
    expect(Date.now() - closing).toBeLessThan(2_000);
  });
});

/** A BatchWriter whose every Spark call hangs until its signal aborts. */
function hungWriter(): {
  writer: BatchWriter;
  calls: string[];
  aborted: number;
  pending(): boolean;
} {
  let waiting = 0;
  const state = {
    calls: [] as string[],
    aborted: 0,
    pending: () => waiting > 0,
    writer: undefined as unknown as BatchWriter,
  };
  const hang = (method: string, options?: ExecutionOptions): Promise<never> =>
    new Promise<never>((_, reject) => {
      state.calls.push(method);
      waiting += 1;
      options?.signal?.addEventListener(
        "abort",
        () => {
          waiting -= 1;
          state.aborted += 1;
          reject(new Error(`${method} aborted`));
        },
        { once: true },
      );
    });
  state.writer = {
    stage: (_batch, options) => hang("stage", options),
    publish: (_table, _snapshot, options) => hang("publish", options),
    hasBatchRows: (_table, _marker, _files, options) => hang("hasBatchRows", options),
  };
  return state;
}
