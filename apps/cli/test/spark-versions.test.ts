/**
 * The acceptance run of each supported Spark Connect version (`npm run test:spark-matrix` runs it against
 * 3.5, 4.0 and 4.1; `npm test` against the default server): 50 JSON files of 10 rows and a corrupt file in
 * the middle of a batch, ingested by real worker processes, the first of them SIGKILLed right after a
 * commit. Every good file lands exactly once, the corrupt file fails alone at its first attempt with its
 * parse error, every commit carries its batch id, and the crashed commit is recovered, not written again.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cli,
  cliJson,
  createSandbox,
  expectExactlyOnce,
  LakeferryProcess,
  query,
  removeSandbox,
  rowsPerFile,
  setUpIngestion,
  statusOf,
  until,
  type Sandbox,
} from "./support.ts";

const GOOD_FILES = 50;
const ROWS = 10;

describe(`Spark ${process.env.LAKEFERRY_SPARK_VERSION ?? "(the server's version)"}`, () => {
  let box: Sandbox;
  const processes: LakeferryProcess[] = [];
  let passed = false;

  beforeAll(async () => {
    box = await createSandbox("versions");
  });

  afterAll(async () => {
    for (const p of processes) p.kill();
    if (passed) await removeSandbox(box, true);
    else await box.db.close();
  });

  it("50 files land exactly once, the corrupt one fails alone at once, a crash after a commit is recovered", async () => {
    const expected = new Map<string, number>();
    for (let i = 0; i < GOOD_FILES; i++) {
      // The corrupt file sorts into the middle: f-0024, f-0024-corrupt, f-0025.
      const path = join(box.source, `f-${String(i).padStart(4, "0")}.json`);
      const lines = Array.from({ length: ROWS }, (_, j) =>
        JSON.stringify({ id: i * 100 + j, file: i, amount: j / 10 }),
      );
      await writeFile(path, `${lines.join("\n")}\n`);
      expected.set(`file://${path}`, ROWS);
    }
    const corrupt = join(box.source, "f-0024-corrupt.json");
    await writeFile(corrupt, '{"id": 1, "file": 24, "amount": 0.5}\n{"id": 2, "file": \n');
    await setUpIngestion(box, { retry: "{ attempts: 3, backoffMs: 300 }" });
    const discovered = await cli(["discover", box.name], box.env);
    expect(discovered.code, discovered.stderr).toBe(0);
    expect(discovered.stdout).toContain(`enqueued ${GOOD_FILES + 1}`);

    const fast = { LAKEFERRY_LEASE_MS: "3000", LAKEFERRY_RECONCILE_INTERVAL_MS: "1000" };
    // A worker killed right after its first commit is published, before Postgres records it.
    const crashing = new LakeferryProcess(
      box,
      ["worker", "--concurrency", "10"],
      { ...fast, LAKEFERRY_FAULT_INJECTION: "crash-after-commit", LAKEFERRY_WORKER_ID: "crash-after-commit" },
      "crash-after-commit",
    );
    processes.push(crashing);
    expect(await crashing.exited).toEqual({ code: null, signal: "SIGKILL" });
    const [crashed] = await query<{ id: string }>(
      box,
      "SELECT id::text AS id FROM write_batches WHERE state = 'PUBLISHING'",
    );
    expect(crashed, "a batch published but not recorded").toBeDefined();
    const crashBatch = crashed!.id;

    const healthy = new LakeferryProcess(
      box,
      ["worker", "--concurrency", "60"],
      { ...fast, LAKEFERRY_WORKER_ID: "healthy" },
      "healthy",
    );
    processes.push(healthy);
    await until(
      "every file to settle",
      async () => {
        const counts = await statusOf(box);
        return counts.SUCCESS + counts.FAILED === GOOD_FILES + 1 ? counts : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 1_000 },
    );
    expect(await statusOf(box)).toEqual({
      PENDING: 0,
      PROCESSING: 0,
      SUCCESS: GOOD_FILES,
      FAILED: 1,
      SKIPPED: 0,
    });

    // Every good file's 10 rows once; nothing of the corrupt file.
    expect(expectExactlyOnce(await rowsPerFile(box), expected)).toEqual([]);
    const good = await query<{ records: string }>(
      box,
      "SELECT records_ingested::text AS records FROM processed_files WHERE status = 'SUCCESS'",
    );
    expect(good.every((f) => f.records === String(ROWS))).toBe(true);

    // The corrupt file failed alone, at its first counted attempt, with its parse error. (The crashing worker's
    // batch may have taken it on: that claim ends LOST with the crash, not counted.)
    const [bad] = await query<{
      status: string;
      attempts: number;
      retry_count: number;
      error_message: string | null;
    }>(box, "SELECT status, attempts, retry_count, error_message FROM processed_files WHERE file_path = $1", [
      `file://${corrupt}`,
    ]);
    expect(bad).toMatchObject({ status: "FAILED", retry_count: 1 });
    expect(bad?.attempts).toBeLessThanOrEqual(2);
    expect(bad?.error_message).toMatch(/MALFORMED_RECORD|FAILED_READ_FILE|malformed/i);

    // Every commit of rows on the table's lineage (not the empty one that created it) carries the batch id of a batch Postgres recorded COMMITTED.
    const lineage = await cliJson<{ batch: string | null }[]>(
      [
        "sql",
        `SELECT coalesce(s.summary['published-wap-id'], s.summary['lakeferry.batch-id']) AS batch
           FROM ${box.table}.snapshots s JOIN ${box.table}.history h ON h.snapshot_id = s.snapshot_id
          WHERE h.is_current_ancestor AND s.operation = 'append'
            AND coalesce(s.summary['added-records'], '0') <> '0'`,
      ],
      box.env,
    );
    const committed = await query<{ id: string }>(
      box,
      "SELECT id::text AS id FROM write_batches WHERE state = 'COMMITTED'",
    );
    const batches = lineage.map((row) => row.batch);
    expect(batches.every((batch) => batch !== null)).toBe(true);
    expect(new Set(batches).size, "no batch committed twice").toBe(batches.length);
    expect(committed.map((b) => b.id).sort()).toEqual([...new Set(batches)].sort());

    // The crashed commit was recorded by recovery, and is on the lineage once.
    expect(batches.filter((batch) => batch === crashBatch)).toHaveLength(1);
    passed = true;
  });
});
