/**
 * The same file reaching the pipeline by several roads makes one job and one write: enqueued twice,
 * discovered twice, and found by two discoverer processes running the ingestion's schedule. A path outside
 * the source is refused clearly.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cli,
  cliJson,
  createSandbox,
  expectExactlyOnce,
  ingestionYaml,
  LakeferryProcess,
  redis,
  removeSandbox,
  rowsPerFile,
  setUpIngestion,
  statusOf,
  until,
  writeJsonFiles,
  type Sandbox,
} from "./support.ts";
import { writeFile } from "node:fs/promises";

describe("one job, one write", () => {
  let box: Sandbox;
  const processes: LakeferryProcess[] = [];
  let passed = false;

  beforeAll(async () => {
    box = await createSandbox("dedup");
  });

  afterAll(async () => {
    for (const p of processes) p.kill();
    if (passed) await removeSandbox(box, true);
    else await box.db.close();
  });

  it("enqueue twice, discover twice, two scheduled discoverers: one job and one write per file", async () => {
    const expected = await writeJsonFiles(box.source, 30);
    await setUpIngestion(box);
    const waiting = async (): Promise<number> =>
      Number(await redis(box, "LLEN", `${box.prefix}:lakeferry-ingest:wait`));

    const first = await cliJson<{ accepted: unknown[]; refused: unknown[] }>(
      ["enqueue", box.name, "f-0001.json"],
      box.env,
    );
    expect(first.accepted).toHaveLength(1);
    const second = await cliJson<{ accepted: unknown[]; refused: unknown[] }>(
      ["enqueue", box.name, `${box.sourceUri}f-0001.json`, "f-0001.json"],
      box.env,
    );
    expect(second.refused).toEqual([]);
    expect(await waiting()).toBe(1);

    const outside = await cli(["enqueue", box.name, "/etc/hostname", "f-0002.json"], box.env);
    expect(outside.code, outside.stderr).toBe(1);
    expect(outside.stderr).toMatch(/^lakeferry: refused \/etc\/hostname: .*outside/m);
    expect(await waiting()).toBe(2); // the good path of the same call was still queued

    for (let pass = 0; pass < 2; pass++) {
      const discovered = await cli(["discover", box.name], box.env);
      expect(discovered.code, discovered.stderr).toBe(0);
    }
    expect(await waiting()).toBe(30);
    const runs = await cliJson<{ trigger: string; filesNew: number }[]>(["runs", box.name], box.env);
    expect(runs.reduce((sum, r) => sum + r.filesNew, 0)).toBe(30);

    // Now a schedule firing every second, two discoverers and two workers; more files land meanwhile.
    await writeFile(
      join(box.dir, "ingestion.yaml"),
      ingestionYaml(box, { schedule: JSON.stringify("* * * * * *") }),
    );
    const applied = await cli(["ingestion", "apply", "-f", join(box.dir, "ingestion.yaml")], box.env);
    expect(applied.code, applied.stderr).toBe(0);
    for (const n of [1, 2]) processes.push(new LakeferryProcess(box, ["discoverer"], {}, `discoverer-${n}`));
    for (const n of [1, 2])
      processes.push(new LakeferryProcess(box, ["worker", "--concurrency", "50"], {}, `worker-${n}`));
    for (const [file, rows] of await writeJsonFiles(box.source, 20, { startAt: 30 }))
      expected.set(file, rows);

    await until("all 50 files to land", async () => (await statusOf(box)).SUCCESS === 50, {
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    await until(
      "a few scheduled passes",
      async () =>
        (await cliJson<{ trigger: string }[]>(["runs", box.name, "--limit", "100"], box.env)).filter(
          (r) => r.trigger === "schedule",
        ).length >= 3,
      { timeoutMs: 30_000 },
    );
    for (const p of processes) expect(await p.stop()).toEqual({ code: 0, signal: null });

    // Each file registered once, claimed once, written once.
    const allRuns = await cliJson<{ filesNew: number }[]>(["runs", box.name, "--limit", "1000"], box.env);
    expect(allRuns.reduce((sum, r) => sum + r.filesNew, 0)).toBe(50);
    const attempts = await box.db.pool.query<{ file_id: string; n: string }>(
      "SELECT file_id, count(*) AS n FROM file_attempts GROUP BY file_id HAVING count(*) <> 1",
    );
    expect(attempts.rows).toEqual([]);
    expect(expectExactlyOnce(await rowsPerFile(box), expected)).toEqual([]);
    passed = true;
  }, 300_000);
});
