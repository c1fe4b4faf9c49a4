/**
 * Invariant 3, transient side: Spark stops mid-run (a second Spark Connect server of this test's own, so
 * the shared one stays up). With the default retry policy (5 attempts, 1 s exponential: about 15 s in all,
 * far less than the outage), the queue pauses and resumes while it is down, no attempt counts against a
 * file, none is FAILED, and they land, exactly once, when it returns.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cli,
  createSandbox,
  expectExactlyOnce,
  LakeferryProcess,
  removeSandbox,
  ROOT,
  rowsPerFile,
  setUpIngestion,
  statusOf,
  until,
  writeJsonFiles,
  type Sandbox,
} from "./support.ts";

const run = promisify(execFile);
const FILES = 60;
const PORT = 15012;
const sparkEnv = {
  ...process.env,
  LAKEFERRY_SPARK_NAME: "lakeferry-spark-faults",
  LAKEFERRY_SPARK_PORT: String(PORT),
  LAKEFERRY_SPARK_MEMORY: "1g",
};

async function spark(action: "up" | "down"): Promise<void> {
  await run("bash", [join(ROOT, "scripts/services.sh"), action, "spark"], {
    env: sparkEnv,
    timeout: 300_000,
  });
}

describe("Spark stopped mid-run", () => {
  let box: Sandbox;
  let worker: LakeferryProcess | undefined;
  let passed = false;

  beforeAll(async () => {
    box = await createSandbox("outage");
    await spark("up");
  }, 320_000);

  afterAll(async () => {
    worker?.kill();
    await spark("down");
    if (passed) await removeSandbox(box, true);
    else await box.db.close();
  }, 60_000);

  it("retries with backoff while Spark is down and lands every file once it is back", async () => {
    const expected = await writeJsonFiles(box.source, FILES);
    await setUpIngestion(box, { retry: "{ attempts: 5, backoffMs: 1000 }" });
    worker = new LakeferryProcess(box, ["worker", "--concurrency", "10"], {
      SPARK_REMOTE: `sc://127.0.0.1:${PORT}`,
      LAKEFERRY_BATCH_MAX_FILES: "5",
      LAKEFERRY_LEASE_MS: "5000",
      LAKEFERRY_RECONCILE_INTERVAL_MS: "2000",
    });
    const discovered = await cli(["discover", box.name], box.env);
    expect(discovered.code, discovered.stderr).toBe(0);

    // A second Spark server's first job (JVM warm-up, table creation) is slow on 2 busy cores.
    await until("the first files to land", async () => (await statusOf(box)).SUCCESS >= 5, {
      timeoutMs: 240_000,
      intervalMs: 200,
    });
    await spark("down");
    const downAt = Date.now();

    // While Spark is down: attempts end in RETRY (an outage), never FAILED; each file retries more than once.
    const retried = await until(
      "a file to be retried twice while Spark is down",
      async () => {
        const rows = (
          await box.db.pool.query<{ file_id: string; n: string }>(
            "SELECT file_id, count(*) AS n FROM file_attempts WHERE outcome = 'RETRY' GROUP BY file_id HAVING count(*) >= 2 LIMIT 1",
          )
        ).rows;
        return rows[0]?.file_id;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    expect((await statusOf(box)).FAILED).toBe(0);
    const landedWhileDown = (await statusOf(box)).SUCCESS;

    await spark("up");
    console.log(`Spark was down for ${((Date.now() - downAt) / 1000).toFixed(1)} s`);
    await until(
      "every file to land after Spark returned",
      async () => (await statusOf(box)).SUCCESS === FILES,
      {
        timeoutMs: 240_000,
        intervalMs: 1_000,
      },
    );
    expect(await statusOf(box)).toEqual({ PENDING: 0, PROCESSING: 0, SUCCESS: FILES, FAILED: 0, SKIPPED: 0 });
    expect(landedWhileDown).toBeLessThan(FILES);

    // Backoff: the retried file's attempts are spaced out, each gap at least the policy's first delay.
    const attempts = (
      await box.db.pool.query<{ started_at: Date; outcome: string | null }>(
        "SELECT started_at, outcome FROM file_attempts WHERE file_id = $1 ORDER BY attempt",
        [retried],
      )
    ).rows;
    expect(attempts.length).toBeGreaterThanOrEqual(3);
    // The attempt that wrote the file's batch ends SUCCESS, even when the batch was found committed later
    // (Spark stopping after the commit) by the next attempt or the reconciler.
    expect(attempts.filter((attempt) => attempt.outcome === "SUCCESS").length).toBeGreaterThanOrEqual(1);
    for (let i = 1; i < attempts.length; i++) {
      const gap = attempts[i]!.started_at.getTime() - attempts[i - 1]!.started_at.getTime();
      expect(gap).toBeGreaterThanOrEqual(700); // the breaker's first pause, 1 s less its jitter
    }
    // The outage spent no file's attempts: every retry was an uncounted one.
    const counted = await box.db.pool.query<{ n: string }>(
      "SELECT count(*) AS n FROM file_attempts WHERE outcome IN ('RETRY', 'FAILED') AND counted",
    );
    expect(Number(counted.rows[0]?.n)).toBe(0);
    const spent = await box.db.pool.query<{ n: string }>("SELECT sum(retry_count) AS n FROM processed_files");
    expect(Number(spent.rows[0]?.n)).toBe(0);

    expect(expectExactlyOnce(await rowsPerFile(box), expected)).toEqual([]);
    expect(await worker.stop()).toEqual({ code: 0, signal: null });
    passed = true;
  }, 600_000);
});
