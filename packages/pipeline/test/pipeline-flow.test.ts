import { fileHistory, listFiles, statusCounts } from "@lakeferry/db";
import { afterEach, describe, expect, it } from "vitest";
import { discoverFiles, waitForRun } from "../src/index.ts";
import { createWorld, eventually, jsonRows, rowsPerFile, snapshotsOf, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

describe("discover → queue → worker → Iceberg", () => {
  it("ingests 20 files with few commits, each file's rows once, and a second pass finds nothing new", async () => {
    const w = (world = await createWorld());
    const expected: Record<string, number> = {};
    for (let i = 0; i < 20; i++) {
      const rows = (i % 3) + 1;
      const uri = await w.file(i < 10 ? `day=1/f${i}.json` : `day=2/f${i}.json`, jsonRows(i * 10, rows));
      expected[uri] = rows;
    }
    await w.file("notes.txt", "not matched by the pattern\n");
    const ingestion = await w.ingestion();
    await w.worker();

    const first = await discoverFiles(w, ingestion);
    expect(first).toMatchObject({ found: 20, created: 20, modified: 0, enqueued: 20 });
    expect(first.error).toBeUndefined();
    expect(first.listCalls).toBeGreaterThan(0);
    const settled = await waitForRun(w, first.run.id, { timeoutMs: 120_000 });
    expect(settled).toEqual({ total: 20, settled: 20, failed: 0 });

    expect(await statusCounts(w.db, ingestion.id)).toEqual({
      PENDING: 0,
      PROCESSING: 0,
      SUCCESS: 20,
      FAILED: 0,
      SKIPPED: 0,
    });
    const table = w.table();
    expect(await rowsPerFile(w.spark, table)).toEqual(expected);
    const snapshots = await snapshotsOf(w.spark, table);
    expect(snapshots.length).toBeLessThanOrEqual(4);

    const files = await listFiles(w.db, ingestion.id);
    const snapshotIds = new Set(snapshots.map((s) => s.snapshotId));
    for (const file of files) {
      expect(file.recordsIngested).toBe(expected[file.filePath]);
      expect(file.bytesRead).toBe(file.fileSize);
      expect(file.attempts).toBe(1);
      expect(file.leaseOwner).toBeNull();
      expect(snapshotIds.has(file.snapshotId ?? "")).toBe(true);
      expect(snapshots.find((s) => s.snapshotId === file.snapshotId)?.batchId).toBe(file.batchId);
    }

    const second = await discoverFiles(w, await w.reload(ingestion.name));
    expect(second).toMatchObject({ found: 20, created: 0, modified: 0, enqueued: 0 });
  });

  it("fails a corrupt file alone, on its first attempt, with its own error; its batch neighbours land", async () => {
    const w = (world = await createWorld());
    const good: string[] = [];
    for (let i = 0; i < 5; i++) good.push(await w.file(`ok-${i}.json`, jsonRows(i * 10, 2)));
    const corrupt = await w.file("corrupt.json", `{"id": 1, "v": "fine"}\n{"id": 2, "v": \n`);
    const ingestion = await w.ingestion();
    await w.worker({ batch: { maxWaitMs: 1_000 } });

    const run = await discoverFiles(w, ingestion);
    expect(await waitForRun(w, run.run.id, { timeoutMs: 120_000 })).toEqual({
      total: 6,
      settled: 6,
      failed: 1,
    });

    const files = await listFiles(w.db, ingestion.id);
    const bad = files.find((file) => file.filePath === corrupt);
    expect(bad).toMatchObject({ status: "FAILED", attempts: 1 });
    expect(bad?.errorType).toBeTruthy();
    expect(bad?.errorMessage).toMatch(/malformed|parse|corrupt/i);
    // Read once, in its batch: Spark 4 named it, so it failed on what Spark said, without a write of its
    // own. (Spark 3.5 names no file for a malformed record: the batch is halved until it is alone.)
    const { rows: batches } = await w.db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM write_batch_files WHERE file_id = $1",
      [bad?.id],
    );
    if (!(await w.spark.serverVersion()).startsWith("3.5.")) expect(batches).toEqual([{ n: 1 }]);
    for (const file of files.filter((f) => f.filePath !== corrupt)) {
      expect(file).toMatchObject({ status: "SUCCESS", recordsIngested: 2, attempts: 1, errorType: null });
    }
    const counts = await rowsPerFile(w.spark, w.table());
    expect(counts).toEqual(Object.fromEntries(good.map((uri) => [uri, 2])));
  });

  it("follows the modified-file policies: append ingests the new version too, replace swaps its rows", async () => {
    const w = (world = await createWorld());
    const appendDir = `${w.dir}/appending`;
    const replaceDir = `${w.dir}/replacing`;
    const appendTable = w.table("appended");
    const replaceTable = w.table("replaced");
    const append = await w.ingestion({
      name: "appending",
      source: `file://${appendDir}/`,
      table: appendTable,
      modified: "append",
    });
    const replace = await w.ingestion({
      name: "replacing",
      source: `file://${replaceDir}/`,
      table: replaceTable,
      modified: "replace",
    });
    const files = {
      appendX: await w.file("appending/x.json", jsonRows(0, 2)),
      appendY: await w.file("appending/y.json", jsonRows(100, 1)),
      replaceX: await w.file("replacing/x.json", jsonRows(0, 2)),
      replaceY: await w.file("replacing/y.json", jsonRows(100, 1)),
    };
    await w.worker();

    for (const ingestion of [append, replace]) {
      const run = await discoverFiles(w, ingestion);
      await waitForRun(w, run.run.id, { timeoutMs: 120_000 });
    }

    // x changes: three new rows (ids 50..52) in place of the two.
    await w.file("appending/x.json", jsonRows(50, 3));
    await w.file("replacing/x.json", jsonRows(50, 3));
    for (const ingestion of [append, replace]) {
      const run = await discoverFiles(w, await w.reload(ingestion.name));
      expect(run).toMatchObject({ created: 0, modified: 1, enqueued: 1 });
      expect(await waitForRun(w, run.run.id, { timeoutMs: 120_000 })).toMatchObject({ total: 1, failed: 0 });
    }

    expect(await rowsPerFile(w.spark, appendTable)).toEqual({ [files.appendX]: 5, [files.appendY]: 1 });
    expect(await rowsPerFile(w.spark, replaceTable)).toEqual({ [files.replaceX]: 3, [files.replaceY]: 1 });
    const replacedIds = await w.spark.sql(
      `SELECT id FROM ${replaceTable} WHERE _source_file = :f ORDER BY id`,
      {
        f: files.replaceX,
      },
    );
    expect(replacedIds.map((row) => Number(row.id))).toEqual([50, 51, 52]);

    const [x] = (await listFiles(w.db, replace.id)).filter((file) => file.filePath === files.replaceX);
    expect(x).toMatchObject({ version: 2, status: "SUCCESS", recordsIngested: 3 });
    const history = await fileHistory(w.db, x?.id ?? 0);
    expect(history.versions).toHaveLength(2);
  });
});

describe("WorkerRuntime.close", () => {
  it("writes the batches still gathering before it returns, instead of dropping them", async () => {
    const w = (world = await createWorld());
    for (let i = 0; i < 3; i++) await w.file(`f${i}.json`, jsonRows(i * 10, 2));
    const ingestion = await w.ingestion();
    // A batch would wait a minute for company; closing must not wait for that, nor lose the files.
    const runtime = await w.worker({ batch: { maxWaitMs: 60_000 } });
    await discoverFiles(w, ingestion);
    await eventually("files claimed", async () =>
      (await statusCounts(w.db, ingestion.id)).PROCESSING === 3 ? true : undefined,
    );
    const started = Date.now();
    await runtime.close({ timeoutMs: 60_000 });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(await statusCounts(w.db, ingestion.id)).toMatchObject({ SUCCESS: 3, PROCESSING: 0 });
  });

  it("interrupted past its deadline, leaves the work for others to finish exactly once", async () => {
    const w = (world = await createWorld());
    const expected: Record<string, number> = {};
    for (let i = 0; i < 6; i++) expected[await w.file(`f${i}.json`, jsonRows(i * 10, 2))] = 2;
    const ingestion = await w.ingestion();
    const first = await w.worker({ leaseMs: 2_000, batch: { maxWaitMs: 100 } });
    await discoverFiles(w, ingestion);
    await eventually(
      "a batch being written",
      async () => ((await w.db.prisma.writeBatch.count({ where: { state: "OPEN" } })) > 0 ? true : undefined),
      60_000,
      20,
    );
    await first.close({ timeoutMs: 1 });

    await w.worker({ leaseMs: 2_000, reconcileIntervalMs: 1_000, batchGraceMs: 3_000 });
    await eventually("every file settled", async () =>
      (await statusCounts(w.db, ingestion.id)).SUCCESS === 6 ? true : undefined,
    );
    expect(await rowsPerFile(w.spark, w.table())).toEqual(expected);
    const open = await w.db.prisma.writeBatch.count({ where: { state: "OPEN" } });
    expect(open).toBe(0);
  });
});
