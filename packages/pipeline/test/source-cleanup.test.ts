/**
 * Source cleanup (issue 11, `cleanSource`): the source objects of files SUCCESS in a committed batch are moved
 * or deleted once the retention passed, on every store; nothing else is touched; each outcome is recorded on
 * the file; a failure is recorded and tried again; cleaned paths are never registered again.
 */
import { randomUUID } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import {
  acquireMaintenanceLease,
  beginPublish,
  claimFiles,
  listFiles,
  listSourceCleanups,
  openBatch,
  recordOutcomes,
  releaseMaintenanceLease,
  type Ingestion,
} from "@lakeferry/db";
import { MaintenanceQueue } from "@lakeferry/queue";
import { createObjectStore } from "@lakeferry/storage";
import { afterEach, describe, expect, it } from "vitest";
import { azureFixture, gcsFixture, localFixture, s3Fixture } from "../../storage/test/fixtures.ts";
import {
  DiscovererRuntime,
  discoverFiles,
  parseIngestionSpec,
  applyIngestion,
  SourceCleaner,
  waitForRun,
  type PipelineContext,
} from "../src/index.ts";
import { createWorld, env, eventually, jsonRows, rowsPerFile, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0)) await close();
  await world?.close();
  world = undefined;
});

/** The pipeline context with the test's environment for the stores (the emulators' endpoints). */
function contextOf(w: TestWorld): PipelineContext {
  return { db: w.db, queue: w.queue, logger: w.logger, storeOptions: () => ({ env: process.env }) };
}

function cleanerOf(w: TestWorld): SourceCleaner {
  return new SourceCleaner({
    db: w.db,
    logger: w.logger,
    storeOptions: () => ({ env: process.env }),
    batchesPerChunk: 2,
  });
}

const run = (cleaner: SourceCleaner, ingestion: Ingestion) =>
  cleaner.run(ingestion, new AbortController().signal);

/** The file rows of these URIs, as refs. */
async function refsOf(
  w: TestWorld,
  ingestion: Ingestion,
  uris: string[],
): Promise<{ id: number; version: number }[]> {
  const files = await listFiles(w.db, ingestion.id);
  return uris.map((uri) => {
    const file = files.find((f) => f.filePath === uri);
    if (!file) throw new Error(`${uri} is not registered`);
    return { id: file.id, version: file.version };
  });
}

/**
 * The bookkeeping a writer does around a batch whose Spark write went as `state` says: claim, open, and then
 * publish and record COMMITTED (every file SUCCESS), or record the batch FAILED (every file FAILED). Stands in
 * for the Spark write on stores the local Spark cannot read (Azure, GCS); the local test writes for real.
 */
async function settleBatch(
  w: TestWorld,
  ingestion: Ingestion,
  uris: string[],
  state: "COMMITTED" | "FAILED",
): Promise<string> {
  const refs = await refsOf(w, ingestion, uris);
  const worker = "writer";
  expect(await claimFiles(w.db, { refs, worker, leaseMs: 60_000 })).toHaveLength(refs.length);
  const batchId = randomUUID();
  await openBatch(w.db, {
    batchId,
    ingestionId: ingestion.id,
    table: ingestion.targetTable,
    worker,
    files: refs,
    ingestedAtMicros: 1_700_000_000_000_000n,
  });
  if (state === "COMMITTED") {
    await beginPublish(w.db, {
      batchId,
      worker,
      stagedSnapshotId: "1",
      records: refs.map((ref) => ({ fileId: ref.id, records: 1 })),
      publishLeaseMs: 60_000,
    });
  }
  await recordOutcomes(w.db, {
    worker,
    outcomes: refs.map((ref) =>
      state === "COMMITTED"
        ? { ...ref, status: "SUCCESS" as const, recordsIngested: 1, bytesRead: 1, batchId, snapshotId: "1" }
        : {
            ...ref,
            status: "FAILED" as const,
            batchId,
            errorType: "SPARK_ERROR",
            errorMessage: "write failed",
          },
    ),
    batch:
      state === "COMMITTED"
        ? { id: batchId, state, snapshotId: "1" }
        : { id: batchId, state, errorMessage: "x" },
  });
  return batchId;
}

/** Moves a batch's commit `hours` into the past, as if the retention had gone by. */
async function age(w: TestWorld, batchId: string, hours: number): Promise<void> {
  await w.db.pool.query(
    `UPDATE write_batches SET resolved_at = resolved_at - $2::float8 * interval '1 hour' WHERE id = $1`,
    [batchId, hours],
  );
}

const NOTHING = {
  moved: 0,
  deleted: 0,
  alreadyGone: 0,
  keptChanged: 0,
  keptOutside: 0,
  failed: 0,
  batchesCleaned: 0,
};

describe.each([s3Fixture, azureFixture, gcsFixture, localFixture])("$scheme source", (fixture) => {
  it("moves or deletes, after the retention, only the objects of files SUCCESS in a committed batch", async () => {
    const w = (world = await createWorld());
    const ctx = contextOf(w);
    const container = await fixture.createContainer("clean");
    const root = container.rootUri.replace(/\/?$/, "/");
    const names = ["a", "b", "changed", "gone", "pending", "failed"];
    for (const dir of ["mv", "rm"]) {
      for (const name of names) await container.put(`${container.base}${dir}/${name}.json`, jsonRows(0, 2));
    }
    const store = createObjectStore(container.rootUri, fixture.options());
    closers.push(() => store.close());
    const key = (relative: string): string => `${container.base}${relative}`;
    const uri = (relative: string): string => `${root}${relative}`;

    const base = { format: "json", pattern: "*.json", listing: { minAgeMs: 0 } };
    const moving = await w.ingestion({
      ...base,
      name: "moving",
      source: uri("mv/"),
      cleanSource: { mode: "move", moveTo: uri("archive/"), retention: "1h" },
    });
    const deleting = await w.ingestion({
      ...base,
      name: "deleting",
      source: uri("rm/"),
      cleanSource: { mode: "delete", retention: "7d" },
    });

    const cleaner = cleanerOf(w);
    const batches: string[] = [];
    for (const [ingestion, dir] of [
      [moving, "mv"],
      [deleting, "rm"],
    ] as const) {
      expect((await discoverFiles(ctx, ingestion)).created).toBe(names.length);
      const committed = ["a", "b", "changed", "gone"].map((name) => uri(`${dir}/${name}.json`));
      batches.push(await settleBatch(w, ingestion, committed, "COMMITTED"));
      await settleBatch(w, ingestion, [uri(`${dir}/failed.json`)], "FAILED");
      // Committed, but not yet past the retention: nothing is done.
      expect(await run(cleaner, ingestion)).toMatchObject(NOTHING);
      // An object replaced since it was ingested, and one removed by someone else.
      await container.put(key(`${dir}/changed.json`), jsonRows(0, 3));
      await store.deleteObject(key(`${dir}/gone.json`));
    }
    await age(w, batches[0]!, 2);
    await age(w, batches[1]!, 7 * 24 + 1);

    expect(await run(cleaner, moving)).toMatchObject({
      ...NOTHING,
      moved: 2,
      alreadyGone: 1,
      keptChanged: 1,
      batchesCleaned: 1,
    });
    expect(await run(cleaner, deleting)).toMatchObject({
      ...NOTHING,
      deleted: 2,
      alreadyGone: 1,
      keptChanged: 1,
      batchesCleaned: 1,
    });

    for (const dir of ["mv", "rm"]) {
      for (const name of ["a", "b", "gone"])
        expect(await store.stat(key(`${dir}/${name}.json`))).toBeUndefined();
      // Not SUCCESS in a committed batch (PENDING, FAILED), or changed: left alone.
      for (const name of ["changed", "pending", "failed"])
        expect(await store.stat(key(`${dir}/${name}.json`))).toBeDefined();
    }
    const archived = await store.stat(key("archive/a.json"));
    expect(archived?.size).toBe(Buffer.byteLength(jsonRows(0, 2)));
    expect(await store.stat(key("archive/b.json"))).toBeDefined();
    expect(await store.stat(key("archive/changed.json"))).toBeUndefined();

    // Recorded on each file: how, when, where to.
    const files = await listFiles(w.db, moving.id);
    const idOf = (name: string): number => files.find((f) => f.filePath === uri(`mv/${name}.json`))!.id;
    const records = await listSourceCleanups(w.db, { ingestionId: moving.id });
    expect(records.map((r) => [r.fileId, r.action, r.movedTo, r.attempts])).toEqual(
      [
        [idOf("a"), "moved", uri("archive/a.json"), 1],
        [idOf("b"), "moved", uri("archive/b.json"), 1],
        [idOf("changed"), "kept_changed", null, 1],
        [idOf("gone"), "already_gone", null, 1],
      ].sort((x, y) => (x[0] as number) - (y[0] as number)),
    );
    expect(records.every((r) => r.cleanedAt instanceof Date && r.errorMessage === null)).toBe(true);
    const deleted = await listSourceCleanups(w.db, { ingestionId: deleting.id });
    expect(deleted.map((r) => r.action).sort()).toEqual([
      "already_gone",
      "deleted",
      "deleted",
      "kept_changed",
    ]);
    // Files stay SUCCESS: their rows are in the table whatever became of the objects.
    expect(files.filter((f) => f.status === "SUCCESS")).toHaveLength(4);

    // Discovery registers no cleaned path again and lists nothing moved (moveTo is outside every source).
    for (const ingestion of [moving, deleting]) {
      // In full, past the incremental cursor of the clouds' listings.
      const again = await discoverFiles(ctx, await w.reload(ingestion.name), { full: true });
      expect(again).toMatchObject({ found: 3, created: 0 });
    }
    // Each batch is done: the next run has nothing to do.
    expect(await run(cleaner, moving)).toMatchObject(NOTHING);
    expect(await run(cleaner, deleting)).toMatchObject(NOTHING);
  });
});

describe("local source with Spark", () => {
  it("moves the files a real batch committed, records a failed move and finishes it on the next run, from the discoverer's schedule", async () => {
    const w = (world = await createWorld());
    const good = [await w.file("in/a.json", jsonRows(0, 3)), await w.file("in/b.json", jsonRows(3, 3))];
    const bad = await w.file("in/bad.json", '{"id": 1, "v": "x"}\n{not json\n');
    // moveTo is blocked at first: a plain file where its directory should be.
    const archiveDir = `${w.dir}-archive`;
    await writeFile(archiveDir, "not a directory");
    closers.push(() => rm(archiveDir, { recursive: true, force: true }));
    const ingestion = await w.ingestion({
      source: `file://${w.dir}/in/`,
      pattern: "*.json",
      options: { mode: "FAILFAST" },
      cleanSource: { mode: "move", moveTo: `file://${archiveDir}/`, retention: "0m" },
    });
    await w.worker();
    const discovery = await discoverFiles(w, ingestion);
    expect(await waitForRun(w, discovery.run.id, { timeoutMs: 90_000 })).toMatchObject({
      total: 3,
      settled: 3,
    });
    const files = await listFiles(w.db, ingestion.id);
    expect(files.map((f) => [f.filePath, f.status]).sort()).toEqual(
      [
        [good[0], "SUCCESS"],
        [good[1], "SUCCESS"],
        [bad, "FAILED"],
      ].sort(),
    );
    const rows = await rowsPerFile(w.spark, ingestion.targetTable);
    expect(rows).toEqual({ [good[0]!]: 3, [good[1]!]: 3 });

    const cleaner = cleanerOf(w);
    const failed = await run(cleaner, ingestion);
    expect(failed).toMatchObject({ ...NOTHING, failed: 2, more: true });
    const records = await listSourceCleanups(w.db, { ingestionId: ingestion.id });
    expect(records).toHaveLength(2);
    for (const record of records) {
      expect(record).toMatchObject({ action: null, cleanedAt: null, attempts: 1 });
      expect(record.errorMessage).toMatch(/move of file:\/\/.*\/in\/[ab]\.json failed|EEXIST|ENOTDIR/);
    }
    // Nothing moved, nothing lost: the sources are where they were, the table as it was.
    const store = createObjectStore(`file://${w.dir}/`);
    for (const uri of good) expect(await store.stat(new URL(uri).pathname)).toBeDefined();

    // Unblocked, the discoverer runs the cleanup its schedule (or a request) fires.
    await rm(archiveDir);
    const runtime = new DiscovererRuntime({
      databaseUrl: env.databaseUrl,
      redisUrl: env.redisUrl,
      queuePrefix: w.prefix,
      dbSchema: w.schema,
      logger: w.logger,
      sparkRemote: env.sparkRemote,
      storeOptions: () => ({ env: process.env }),
    });
    closers.push(() => runtime.close({ timeoutMs: 5_000 }));
    const queue = new MaintenanceQueue({ redisUrl: env.redisUrl, prefix: w.prefix });
    closers.push(() => queue.close());
    await runtime.start();
    const schedules = await queue.schedules();
    expect(schedules.filter((s) => s.task === "cleanSource")).toEqual([
      {
        ingestionId: ingestion.id,
        task: "cleanSource",
        cron: expect.stringMatching(/^\d{1,2} \* \* \* \*$/) as unknown,
      },
    ]);
    await queue.requestMaintenance(ingestion.id, "cleanSource");
    const done = await eventually("the requested cleanup", async () => {
      const now = await listSourceCleanups(w.db, { ingestionId: ingestion.id });
      return now.every((r) => r.action === "moved") ? now : undefined;
    });
    for (const record of done) {
      expect(record).toMatchObject({ action: "moved", attempts: 2 });
      expect(record.cleanedAt).toBeInstanceOf(Date);
      // The earlier failure stays on record.
      expect(record.errorMessage).not.toBeNull();
    }
    for (const uri of good) {
      const name = uri.slice(uri.lastIndexOf("/") + 1);
      expect(await store.stat(new URL(uri).pathname)).toBeUndefined();
      expect(
        (await createObjectStore(`file://${archiveDir}/`).stat(`${archiveDir}/${name}`))?.size,
      ).toBeGreaterThan(0);
    }
    expect(await store.stat(new URL(bad).pathname)).toBeDefined();
    // The table is untouched; discovery registers nothing again.
    expect(await rowsPerFile(w.spark, ingestion.targetTable)).toEqual(rows);
    expect(await discoverFiles(w, await w.reload(ingestion.name))).toMatchObject({ found: 1, created: 0 });

    // cleanSource off: the schedule goes.
    await w.ingestion({ source: `file://${w.dir}/in/`, pattern: "*.json", options: { mode: "FAILFAST" } });
    await runtime.syncMaintenanceSchedules();
    expect((await queue.schedules()).filter((s) => s.task === "cleanSource")).toEqual([]);
  });
});

describe("applying ingestions", () => {
  it("refuses a moveTo inside another ingestion's source, and a source over another's moveTo", async () => {
    const w = (world = await createWorld());
    await w.ingestion({ name: "landing", source: "s3://bucket/landing/" });
    const apply = (spec: Record<string, unknown>) =>
      applyIngestion(w, parseIngestionSpec({ format: "json", table: w.table(), ...spec }));
    await expect(
      apply({
        name: "orders",
        source: "s3://bucket/orders/",
        cleanSource: { mode: "move", moveTo: "s3://bucket/landing/archive/" },
      }),
    ).rejects.toThrow(
      'cleanSource.moveTo: s3://bucket/landing/archive/ overlaps the source of ingestion "landing" ' +
        "(s3://bucket/landing/): it would ingest the moved files; choose a location outside every ingestion's source",
    );
    await apply({
      name: "orders",
      source: "s3://bucket/orders/",
      cleanSource: { mode: "move", moveTo: "s3://bucket/archive/orders/" },
    });
    await expect(apply({ name: "archive", source: "s3://bucket/archive/" })).rejects.toThrow(
      'source: s3://bucket/archive/ overlaps s3://bucket/archive/orders/, where ingestion "orders" moves its ' +
        "cleaned files: they would be ingested again; choose another source, or move that ingestion's cleanSource.moveTo",
    );
    // Its own settings again, and another store's bucket of the same name: no overlap.
    await apply({
      name: "orders",
      source: "s3://bucket/orders/",
      cleanSource: { mode: "move", moveTo: "s3://bucket/archive/orders/" },
    });
    await apply({ name: "elsewhere", source: "gs://bucket/archive/" });
  });
});

describe("an ingestion whose source was changed", () => {
  it("leaves the objects of files registered under the earlier source in place; one run at a time", async () => {
    const w = (world = await createWorld());
    const old = await w.file("old/a.json", jsonRows(0, 2));
    const cleanSource = { mode: "delete", retention: "7d" };
    const before = await w.ingestion({ source: `file://${w.dir}/old/`, pattern: "*.json", cleanSource });
    expect((await discoverFiles(w, before)).created).toBe(1);
    const batchId = await settleBatch(w, before, [old], "COMMITTED");
    await age(w, batchId, 8 * 24);

    const after = await w.ingestion({ source: `file://${w.dir}/new/`, pattern: "*.json", cleanSource });
    // One run per ingestion at a time: while another holds the lease, a run does nothing.
    const held = { name: `clean-source:${after.id}`, holder: "another-run", ttlMs: 60_000 };
    expect(await acquireMaintenanceLease(w.db, held)).toBe(true);
    expect(await run(cleanerOf(w), after)).toEqual({ kind: "busy" });
    await releaseMaintenanceLease(w.db, held);
    expect(await run(cleanerOf(w), after)).toMatchObject({ ...NOTHING, keptOutside: 1, batchesCleaned: 1 });
    expect(await createObjectStore(old).stat(new URL(old).pathname)).toBeDefined();
    expect(await listSourceCleanups(w.db, { ingestionId: after.id })).toMatchObject([
      { action: "kept_outside_source", movedTo: null, attempts: 1 },
    ]);
  });
});
