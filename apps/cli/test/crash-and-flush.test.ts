/**
 * Invariants 1 and 2 with real processes: a worker SIGKILLed right after its Iceberg commit (before
 * Postgres recorded it), one SIGKILLed right after claiming files, and every Redis key of the deployment
 * deleted mid-run, then one worker stopped gracefully mid-run. No file is lost and no row is written twice.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cli,
  cliJson,
  createSandbox,
  deleteQueueKeys,
  expectExactlyOnce,
  LakeferryProcess,
  query,
  removeSandbox,
  rowsPerFile,
  setUpIngestion,
  statusOf,
  until,
  writeJsonFiles,
  type Sandbox,
  type StatusCounts,
} from "./support.ts";

const FILES = 240;

describe("crashes and a Redis flush", () => {
  let box: Sandbox;
  const processes: LakeferryProcess[] = [];
  let passed = false;

  beforeAll(async () => {
    box = await createSandbox("faults");
  });

  afterAll(async () => {
    for (const p of processes) p.kill();
    if (passed) await removeSandbox(box, true);
    else await box.db.close();
  });

  const fast = {
    LAKEFERRY_LEASE_MS: "3000",
    LAKEFERRY_RECONCILE_INTERVAL_MS: "1000",
    LAKEFERRY_BATCH_MAX_FILES: "20",
  };

  it("loses no file and duplicates no row", async () => {
    const expected = await writeJsonFiles(box.source, FILES);
    await setUpIngestion(box, { retry: "{ attempts: 5, backoffMs: 300 }" });
    const discovered = await cli(["discover", box.name], box.env);
    expect(discovered.code, discovered.stderr).toBe(0);
    expect(discovered.stdout).toContain(`enqueued ${FILES}`);

    // 1. Killed after the Iceberg commit, before Postgres records it.
    const afterCommit = new LakeferryProcess(
      box,
      ["worker", "--concurrency", "20"],
      { ...fast, LAKEFERRY_FAULT_INJECTION: "crash-after-commit", LAKEFERRY_WORKER_ID: "crash-after-commit" },
      "crash-after-commit",
    );
    processes.push(afterCommit);
    expect(await afterCommit.exited).toEqual({ code: null, signal: "SIGKILL" });
    // Decided (PUBLISHING) and published, but not recorded COMMITTED: recovery must record it, not write it.
    const open = await query<{ id: string }>(
      box,
      "SELECT id::text AS id FROM write_batches WHERE state = 'PUBLISHING'",
    );
    expect(open.length).toBeGreaterThanOrEqual(1);
    const committedInIceberg = await cli(
      ["sql", `SELECT summary['lakeferry.batch-id'] AS batch FROM ${box.table}.snapshots`, "--json"],
      box.env,
    );
    const crashBatches = (JSON.parse(committedInIceberg.stdout) as { batch: string }[]).map((r) => r.batch);
    // The dangerous point: a batch the table has, that Postgres has not recorded COMMITTED yet.
    const crashBatch = open.map((b) => b.id).find((id) => crashBatches.includes(id));
    expect(
      crashBatch,
      `OPEN batches ${open.map((b) => b.id).join()} vs snapshots ${crashBatches.join()}`,
    ).toBeTruthy();
    const visible = await cliJson<{ n: number }[]>(
      [
        "sql",
        `SELECT count(*) AS n FROM ${box.table}.snapshots s JOIN ${box.table}.history h ON h.snapshot_id = s.snapshot_id WHERE h.is_current_ancestor AND coalesce(s.summary['published-wap-id'], s.summary['lakeferry.batch-id']) = '${crashBatch}'`,
      ],
      box.env,
    );
    expect(visible[0]?.n).toBe(1);

    // 2. Killed right after claiming files.
    const afterClaim = new LakeferryProcess(
      box,
      ["worker", "--concurrency", "20"],
      { ...fast, LAKEFERRY_FAULT_INJECTION: "crash-after-claim", LAKEFERRY_WORKER_ID: "crash-after-claim" },
      "crash-after-claim",
    );
    processes.push(afterClaim);
    expect(await afterClaim.exited).toEqual({ code: null, signal: "SIGKILL" });
    const held = await query<{ n: string }>(
      box,
      "SELECT count(*) AS n FROM processed_files WHERE status = 'PROCESSING' AND lease_owner = 'crash-after-claim'",
    );
    expect(Number(held[0]?.n)).toBeGreaterThanOrEqual(1);

    // 3. Healthy workers; once they are under way, Redis loses every key of this deployment.
    const healthy = ["healthy-1", "healthy-2"].map(
      (id) =>
        new LakeferryProcess(
          box,
          ["worker", "--concurrency", "40"],
          { ...fast, LAKEFERRY_WORKER_ID: id, LAKEFERRY_SHUTDOWN_TIMEOUT_MS: "5000" },
          id,
        ),
    );
    processes.push(...healthy);
    const atFlush = await until(
      "the healthy workers to be under way",
      async () => {
        const counts = await statusOf(box);
        return counts.SUCCESS >= 40 ? counts : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 200 },
    );
    const deleted = await deleteQueueKeys(box);
    const stillToDo = (c: StatusCounts): number => c.PENDING + c.PROCESSING;
    expect(deleted).toBeGreaterThan(0);
    expect(stillToDo(atFlush), "the flush happened mid-run").toBeGreaterThan(0);

    // 4. One healthy worker is stopped (SIGTERM) mid-run: it exits cleanly within its deadline and hands
    // back what it held; the other finishes the work.
    const stopping = Date.now();
    expect(await healthy[0]!.stop()).toEqual({ code: 0, signal: null });
    expect(Date.now() - stopping).toBeLessThan(5_000 + 10_000);

    await until(
      "every file to land after the crashes and the flush",
      async () => (await statusOf(box)).SUCCESS === FILES,
      { timeoutMs: 180_000, intervalMs: 1_000 },
    );
    expect(await statusOf(box)).toEqual({ PENDING: 0, PROCESSING: 0, SUCCESS: FILES, FAILED: 0, SKIPPED: 0 });

    // Exactly once: every file's rows once, nothing else.
    expect(expectExactlyOnce(await rowsPerFile(box), expected)).toEqual([]);

    // The crashed commit was recognised in the table's snapshots, not written again.
    const crashed = await query<{ state: string }>(box, "SELECT state FROM write_batches WHERE id = $1", [
      crashBatch,
    ]);
    expect(crashed[0]?.state).toBe("COMMITTED");
    const sameBatch = await query<{ n: string }>(
      box,
      "SELECT count(*) AS n FROM processed_files WHERE batch_id = $1 AND status = 'SUCCESS'",
      [crashBatch],
    );
    expect(Number(sameBatch[0]?.n)).toBeGreaterThanOrEqual(1);
    const snapshotsOfBatch = await cli(
      [
        "sql",
        `SELECT count(*) AS n FROM ${box.table}.snapshots WHERE summary['lakeferry.batch-id'] = '${crashBatch}'`,
        "--json",
      ],
      box.env,
    );
    expect(JSON.parse(snapshotsOfBatch.stdout)).toEqual([{ n: 1 }]);
    expect(await query(box, "SELECT id FROM write_batches WHERE state = 'OPEN'")).toEqual([]);

    // The audit trail shows what happened: the claims of the killed worker were LOST and taken over.
    const lost = await query<{ n: string }>(
      box,
      "SELECT count(*) AS n FROM file_attempts WHERE worker = 'crash-after-claim' AND outcome = 'LOST'",
    );
    expect(Number(lost[0]?.n)).toBeGreaterThanOrEqual(1);
    const twice = await query(
      box,
      "SELECT file_id FROM file_attempts WHERE outcome = 'SUCCESS' GROUP BY file_id HAVING count(*) > 1",
    );
    expect(twice).toEqual([]);

    for (const p of processes.filter((p) => p.running))
      expect(await p.stop()).toEqual({ code: 0, signal: null });
    passed = true;
  }, 360_000);
});
