/**
 * Issue 3 acceptance, the big one: 1,000 JSON files through three real worker processes. Every good file
 * SUCCESS, its rows in the table exactly once; far fewer Iceberg snapshots than files; five corrupt files
 * FAILED alone, each with its own error, no retries spent on them, their neighbours landed.
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
  removeSandbox,
  rowsPerFile,
  setUpIngestion,
  statusOf,
  writeJsonFiles,
  type Sandbox,
} from "./support.ts";

const FILES = 1_000;
const CORRUPT = [37, 250, 251, 612, 998]; // two neighbours in one batch, one near the end

describe("1,000 files, 3 workers", () => {
  let box: Sandbox;
  const workers: LakeferryProcess[] = [];
  let passed = false;

  beforeAll(async () => {
    box = await createSandbox("thousand");
  });

  afterAll(async () => {
    for (const worker of workers) worker.kill();
    if (passed) await removeSandbox(box, true);
    else await box.db.close();
  });

  it("lands every good file exactly once in few commits; corrupt files fail alone", async () => {
    const expected = await writeJsonFiles(box.source, FILES, { subdir: "2026/11/29" });
    const corrupt = new Set<string>();
    for (const i of CORRUPT) {
      const path = join(box.source, "2026/11/29", `f-${String(i).padStart(4, "0")}.json`);
      // Each broken differently, so each file's error is its own.
      await writeFile(
        path,
        `{"id": ${i}, "file": ${i}, "amount": ${i}.5}\n{"id": ${i}1, "file": oops-${i}\n`,
      );
      expected.delete(`file://${path}`);
      corrupt.add(`file://${path}`);
    }
    await setUpIngestion(box, { retry: "{ attempts: 4, backoffMs: 500 }" });

    for (let n = 1; n <= 3; n++) {
      workers.push(
        new LakeferryProcess(box, ["worker"], { LAKEFERRY_WORKER_ID: `w${n}-${box.id}` }, `worker-${n}`),
      );
    }
    const started = Date.now();
    const waited = await cli(["discover", box.name, "--wait", "--timeout", "240", "--json"], box.env, {
      timeoutMs: 270_000,
    });
    const seconds = (Date.now() - started) / 1000;
    expect(waited.code, waited.stderr).toBe(1); // the corrupt files FAILED
    expect(JSON.parse(waited.stdout)).toMatchObject({
      found: FILES,
      created: FILES,
      total: FILES,
      settled: FILES,
      failed: CORRUPT.length,
    });
    console.log(`1,000 files settled in ${seconds.toFixed(1)} s`);

    expect(await statusOf(box)).toEqual({
      PENDING: 0,
      PROCESSING: 0,
      SUCCESS: FILES - CORRUPT.length,
      FAILED: CORRUPT.length,
      SKIPPED: 0,
    });

    // Corrupt files: FAILED with a permanent error of their own, one attempt each.
    const { files: failed } = await cliJson<{
      files: {
        filePath: string;
        attempts: number;
        retryCount: number;
        errorType: string;
        errorMessage: string;
      }[];
    }>(["files", box.name, "--status", "FAILED"], box.env);
    expect(new Set(failed.map((f) => f.filePath))).toEqual(corrupt);
    for (const file of failed) {
      expect(file.attempts, file.filePath).toBe(1);
      expect(file.errorType, file.filePath).toBeTruthy();
      expect(file.errorMessage, file.filePath).toBeTruthy();
      // Its own error: Spark's message names this file and no other.
      expect(file.errorMessage).toContain(file.filePath);
      for (const other of corrupt)
        if (other !== file.filePath) expect(file.errorMessage).not.toContain(other);
    }

    // Every attempt recorded, one per good file (no file ever written twice).
    const attempts = await box.db.pool.query<{ outcome: string; n: string }>(
      "SELECT outcome, count(*) AS n FROM file_attempts GROUP BY outcome ORDER BY outcome",
    );
    expect(Object.fromEntries(attempts.rows.map((r) => [r.outcome, Number(r.n)]))).toEqual({
      FAILED: CORRUPT.length,
      SUCCESS: FILES - CORRUPT.length,
    });

    // The table: each good file's rows exactly once, nothing from the corrupt ones.
    expect(expectExactlyOnce(await rowsPerFile(box), expected)).toEqual([]);
    const total = await cliJson<{ n: number }[]>(["sql", `SELECT count(*) AS n FROM ${box.table}`], box.env);
    expect(total[0]?.n).toBe([...expected.values()].reduce((a, b) => a + b, 0));

    // Group commits: far fewer published snapshots than files, whichever of the three workers' jobs held them
    // (the table's one writer takes on the files still waiting for their jobs). (Each batch is staged, then
    // published: by the staged snapshot itself when nothing was committed in between, else by a copy; the
    // table's current lineage holds one snapshot per batch.)
    const snapshots = await cliJson<{ n: number }[]>(
      [
        "sql",
        `SELECT count(*) AS n FROM ${box.table}.snapshots s JOIN ${box.table}.history h ON h.snapshot_id = s.snapshot_id WHERE h.is_current_ancestor AND coalesce(s.summary['published-wap-id'], s.summary['lakeferry.batch-id']) IS NOT NULL`,
      ],
      box.env,
    );
    console.log(`${snapshots[0]?.n} snapshots for ${FILES} files`);
    expect(snapshots[0]!.n).toBeLessThanOrEqual(FILES / 10);
    const committed = await box.db.pool.query<{ state: string; n: string }>(
      "SELECT state, count(*) AS n FROM write_batches GROUP BY state",
    );
    const states = Object.fromEntries(committed.rows.map((r) => [r.state, Number(r.n)]));
    expect(states.COMMITTED).toBe(snapshots[0]!.n);
    expect(states.OPEN ?? 0).toBe(0);

    for (const worker of workers) expect(await worker.stop()).toEqual({ code: 0, signal: null });
    passed = true;
  }, 420_000);
});
