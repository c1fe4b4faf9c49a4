/** Table maintenance against real Spark, Iceberg and Postgres: never racing a write, safe with recovery. */
import { randomUUID } from "node:crypto";
import { openBatch, type Ingestion } from "@lakeferry/db";
import { SparkConnectClient, type ExecutionOptions, type Row, type SqlArg } from "@lakeferry/spark-connect";
import { afterEach, describe, expect, it } from "vitest";
import { MaintenanceQueue } from "@lakeferry/queue";
import { dataFileStats } from "@lakeferry/iceberg";
import { DiscovererRuntime, TableMaintainer, TableWriteLeases } from "../src/index.ts";
import { createWorld, env, jsonRows, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  await world?.close();
  world = undefined;
});

/** A real Spark session that notes when each maintenance CALL ran (performance.now() before and after). */
class TimedSpark extends SparkConnectClient {
  readonly calls: { statement: string; start: number; end: number }[] = [];

  override async sqlCommand(
    statement: string,
    args?: Record<string, SqlArg>,
    options?: ExecutionOptions,
  ): Promise<Row[]> {
    const start = performance.now();
    try {
      return await super.sqlCommand(statement, args, options);
    } finally {
      if (statement.startsWith("CALL")) this.calls.push({ statement, start, end: performance.now() });
    }
  }
}

function maintainer(w: TestWorld, spark: SparkConnectClient = w.spark, clockMarginMs = 0): TableMaintainer {
  const leases = new TableWriteLeases({ db: w.db, holder: "maintainer", logger: w.logger, pollMs: 20 });
  return new TableMaintainer({ db: w.db, spark, leases, logger: w.logger, clockMarginMs });
}

const quote = (table: string): string =>
  table
    .split(".")
    .map((part) => `\`${part}\``)
    .join(".");

/** Ids of the table's snapshots, staged ones included. */
async function snapshotIds(w: TestWorld, table: string): Promise<Set<string>> {
  const rows = await w.spark.sql(`SELECT snapshot_id FROM ${quote(table)}.snapshots`);
  return new Set(rows.map((row) => String(row.snapshot_id)));
}

async function rowCount(w: TestWorld, table: string): Promise<number> {
  await w.spark.sqlCommand(`REFRESH TABLE ${quote(table)}`);
  const rows = await w.spark.sql(`SELECT count(*) AS n FROM ${quote(table)}`);
  return Number(rows[0]?.n);
}

/** Writes `count` one-file batches (published), each of `rows` rows; returns their file URIs. */
async function writeBatches(w: TestWorld, table: string, count: number, rows = 3): Promise<string[]> {
  const files: string[] = [];
  for (let i = 0; i < count; i++) {
    const file = await w.file(`in/f${i}.json`, jsonRows(i * rows, rows));
    await w.writer.write({
      batchId: randomUUID(),
      table,
      format: "json",
      schema: "id BIGINT, v STRING",
      files: [file],
    });
    files.push(file);
  }
  return files;
}

/** The ingestion with every task's settings given (0.000001 days ≈ 0.1 s: "older than now"). */
async function maintainedIngestion(w: TestWorld): Promise<Ingestion> {
  return w.ingestion({
    maintenance: {
      expireSnapshots: { olderThanDays: 0.000001, retainLast: 1 },
      compaction: { minInputFiles: 2 },
    },
  });
}

describe("TableMaintainer", () => {
  it("expiry keeps the staged snapshot of a batch that may still be published, and expires a given-up one", async () => {
    const w = (world = await createWorld());
    const ingestion = await maintainedIngestion(w);
    const table = ingestion.targetTable;
    await writeBatches(w, table, 2);
    // A staged write nobody will publish (its batch was given up on): expiry may remove it.
    const orphanFile = await w.file("in/orphan.json", jsonRows(100, 3));
    const orphan = await w.writer.stage({
      batchId: randomUUID(),
      table,
      format: "json",
      schema: "id BIGINT, v STRING",
      files: [orphanFile],
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    // A batch Postgres has OPEN (its writer may still decide it), staged after it was opened.
    const pendingId = randomUUID();
    const ingestedAtMicros = BigInt(Date.now()) * 1000n;
    await openBatch(w.db, {
      batchId: pendingId,
      ingestionId: ingestion.id,
      table,
      worker: "w",
      files: [],
      ingestedAtMicros,
    });
    const pendingFile = await w.file("in/pending.json", jsonRows(200, 4));
    const pending = await w.writer.stage({
      batchId: pendingId,
      table,
      format: "json",
      schema: "id BIGINT, v STRING",
      files: [pendingFile],
      ingestedAtMicros,
    });
    await new Promise((resolve) => setTimeout(resolve, 200));

    const report = await maintainer(w).run(ingestion, "expireSnapshots", new AbortController().signal);

    expect(report).toMatchObject({ kind: "done", heldBack: true });
    const left = await snapshotIds(w, table);
    expect(left.has(orphan.stagedSnapshotId)).toBe(false);
    expect(left.has(pending.stagedSnapshotId)).toBe(true);
    // The pending batch is still publishable, and lands once.
    expect(await w.writer.publish(table, pending.stagedSnapshotId)).toMatchObject({ kind: "published" });
    expect(await rowCount(w, table)).toBe(2 * 3 + 4);
  });

  it("recovery still finds a published batch's rows after compaction and expiry removed its snapshots", async () => {
    const w = (world = await createWorld());
    const ingestion = await maintainedIngestion(w);
    const table = ingestion.targetTable;
    await writeBatches(w, table, 3);
    const file = await w.file("in/last.json", jsonRows(500, 5));
    const staged = await w.writer.stage({
      batchId: randomUUID(),
      table,
      format: "json",
      schema: "id BIGINT, v STRING",
      files: [file],
    });
    await w.writer.publish(table, staged.stagedSnapshotId);
    const run = maintainer(w);
    const signal = new AbortController().signal;

    const compaction = await run.run(ingestion, "compaction", signal);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await run.run(ingestion, "expireSnapshots", signal);

    expect(compaction).toMatchObject({ kind: "done", before: { files: 4 }, after: { files: 1 } });
    expect((await snapshotIds(w, table)).has(staged.stagedSnapshotId)).toBe(false);
    // What recovery does for a PUBLISHING batch: the publish cannot tell any more, the rows can.
    expect(await w.writer.publish(table, staged.stagedSnapshotId)).toMatchObject({ kind: "unpublishable" });
    expect(await w.writer.hasBatchRows(table, staged.ingestedAtMicros, [file])).toBe(true);
    expect(await w.writer.hasBatchRows(table, staged.ingestedAtMicros + 1n, [file])).toBe(false);
    expect(await rowCount(w, table)).toBe(3 * 3 + 5);
  });

  it("a compaction and a batch write never run at once: the compaction waits for the write's lease", async () => {
    const w = (world = await createWorld());
    const ingestion = await maintainedIngestion(w);
    const table = ingestion.targetTable;
    await writeBatches(w, table, 4);
    const timed = new TimedSpark({ remote: env.sparkRemote });
    closers.push(() => timed.close());
    const writerLeases = new TableWriteLeases({ db: w.db, holder: "worker", logger: w.logger, pollMs: 20 });
    const signal = new AbortController().signal;
    const writes: { start: number; end: number }[] = [];
    /** As BatchLifecycle writes: the table's lease around stage and publish. */
    const leasedWrite = async (i: number): Promise<void> => {
      const release = await writerLeases.acquire(table, signal);
      const start = performance.now();
      try {
        const file = await w.file(`in/late${i}.json`, jsonRows(1_000 + i * 10, 10));
        const staged = await w.writer.stage({
          batchId: randomUUID(),
          table,
          format: "json",
          schema: "id BIGINT, v STRING",
          files: [file],
        });
        expect(await w.writer.publish(table, staged.stagedSnapshotId)).toMatchObject({ kind: "published" });
      } finally {
        writes.push({ start, end: performance.now() });
        await release();
      }
    };

    // The first write holds the lease when the compaction asks; more writes queue behind it.
    const first = leasedWrite(0);
    while (!writerLeases.holdsLocally(table)) await new Promise((resolve) => setTimeout(resolve, 5));
    const compaction = maintainer(w, timed).run(ingestion, "compaction", signal);
    await Promise.all([first, compaction, leasedWrite(1), leasedWrite(2)]);

    const call = timed.calls.find((c) => c.statement.includes("rewrite_data_files"));
    expect(call).toBeDefined();
    expect(writes).toHaveLength(3);
    for (const write of writes) {
      const overlaps = call!.start < write.end && write.start < call!.end;
      expect(overlaps, `compaction ${JSON.stringify(call)} overlaps write ${JSON.stringify(write)}`).toBe(
        false,
      );
    }
    // The first write was done before the compaction began: it waited for the lease.
    expect(call!.start).toBeGreaterThan(writes[0]!.end);
    expect(await rowCount(w, table)).toBe(4 * 3 + 3 * 10);
  });

  it("never compacts a table another ingestion replaces files in: refused at apply, and not run", async () => {
    const w = (world = await createWorld());
    const appends = await w.ingestion({ name: "appends" });
    await expect(w.ingestion({ name: "replaces", modified: "replace" })).rejects.toThrow(
      'ingestion "replaces" replaces modified files\' rows in ' +
        `${appends.targetTable}, which ingestion "appends" compacts`,
    );
    await w.ingestion({ name: "appends", maintenance: { compaction: false } });
    await w.ingestion({ name: "replaces", modified: "replace" });
    await expect(w.ingestion({ name: "appends" })).rejects.toThrow(
      'set maintenance.compaction: false on "appends", or give each its own table',
    );
    // Stored before the check existed (or edited by hand): the maintainer does not run it either.
    await w.db.pool.query(`UPDATE ingestions SET maintenance = NULL WHERE name = 'appends'`);
    const report = await maintainer(w).run(
      await w.reload("appends"),
      "compaction",
      new AbortController().signal,
    );
    expect(report).toMatchObject({ task: "compaction", kind: "refused" });
  });

  it("the discoverer keeps one schedule per task that is on, and runs a requested maintenance job", async () => {
    const w = (world = await createWorld());
    const ingestion = await w.ingestion({
      maintenance: { compaction: { schedule: "0 5 * * *", minInputFiles: 2 }, rewriteManifests: false },
    });
    await writeBatches(w, ingestion.targetTable, 3);
    const runtime = new DiscovererRuntime({
      databaseUrl: env.databaseUrl,
      redisUrl: env.redisUrl,
      queuePrefix: w.prefix,
      dbSchema: w.schema,
      logger: w.logger,
      sparkRemote: env.sparkRemote,
    });
    closers.push(() => runtime.close({ timeoutMs: 5_000 }));
    const queue = new MaintenanceQueue({ redisUrl: env.redisUrl, prefix: w.prefix });
    closers.push(() => queue.close());
    await runtime.start();

    const schedules = await queue.schedules();
    expect(schedules.map((s) => [s.ingestionId, s.task, s.cron])).toEqual([
      [ingestion.id, "compaction", "0 5 * * *"],
      [ingestion.id, "expireSnapshots", expect.stringMatching(/^\d+ 2 \* \* \*$/)],
    ]);
    await queue.requestMaintenance(ingestion.id, "compaction");
    const deadline = Date.now() + 60_000;
    while ((await dataFileStats(w.spark, ingestion.targetTable)).files > 1) {
      if (Date.now() > deadline) throw new Error("the requested compaction did not run within 60 s");
      await new Promise((resolve) => setTimeout(resolve, 250));
    }

    // A schedule the queue refuses (stored before a check existed, or edited by hand) is logged and
    // skipped: the ingestion's other tasks keep theirs.
    await w.db.pool.query(
      `UPDATE ingestions SET maintenance = jsonb_set(maintenance, '{compaction,schedule}', '"every day"')
       WHERE id = $1`,
      [ingestion.id],
    );
    await w.db.pool.query(
      `UPDATE ingestions SET maintenance = jsonb_set(maintenance, '{rewriteManifests,schedule}', '"0 6 * * *"')
       WHERE id = $1`,
      [ingestion.id],
    );
    expect(await runtime.syncMaintenanceSchedules()).toEqual({
      set: [`${ingestion.id}:rewriteManifests`],
      removed: [],
    });
    expect((await queue.schedules()).map((s) => [s.task, s.cron])).toEqual([
      ["compaction", "0 5 * * *"],
      ["expireSnapshots", expect.stringMatching(/^\d+ 2 \* \* \*$/)],
      ["rewriteManifests", "0 6 * * *"],
    ]);

    await w.ingestion({ maintenance: false });
    expect(await runtime.syncMaintenanceSchedules()).toEqual({
      set: [],
      removed: [
        `${ingestion.id}:expireSnapshots`,
        `${ingestion.id}:compaction`,
        `${ingestion.id}:rewriteManifests`,
      ],
    });
    expect(await queue.schedules()).toEqual([]);
  });
});
