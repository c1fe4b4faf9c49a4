/**
 * `lakeferry prune` as an operator runs it: a dry run that prints what would go per table and changes
 * nothing, the retention and archive table from the environment or the flags, counts per table, the rows in
 * the Iceberg archive, and a bad archive table refused with what to fix.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claimFiles, finishRun, recordOutcomes, registerFiles, startRun } from "@lakeferry/db";
import { cli, cliJson, createSandbox, removeSandbox, setUpIngestion, type Sandbox } from "./support.ts";

interface Report {
  dryRun: boolean;
  archiveTable: string | null;
  deleted: Record<string, number>;
  archived: number;
}

describe("lakeferry prune", () => {
  let box: Sandbox;
  let archive: string;
  let passed = 0;

  beforeAll(async () => {
    box = await createSandbox("prune");
    archive = `lake.e2e_${box.id}.state_archive`;
    await setUpIngestion(box);
    const { rows } = await box.db.pool.query<{ id: string }>(`SELECT id FROM ingestions WHERE name = $1`, [
      box.name,
    ]);
    const ingestionId = Number(rows[0]?.id);
    // Five files ingested (as the worker records them, without a batch), 100 days ago.
    const run = await startRun(box.db, { ingestionId, trigger: "manual" });
    const files = Array.from({ length: 5 }, (_, i) => ({
      uri: `${box.sourceUri}2026/08/2${i}/orders-00012${i}.json`,
      size: 100 + i,
      etag: `e${i}`,
      modifiedAt: new Date("2026-08-20T00:00:00Z"),
    }));
    const { created } = await registerFiles(box.db, {
      ingestionId,
      runId: run.id,
      files,
      modifiedPolicy: "ignore",
    });
    await claimFiles(box.db, { refs: created, worker: "w", leaseMs: 60_000 });
    await recordOutcomes(box.db, {
      worker: "w",
      outcomes: created.map((f) => ({ ...f, status: "SUCCESS" })),
    });
    await finishRun(box.db, run.id, { filesFound: 5, filesNew: 5, filesModified: 0 });
    await box.db.pool.query(`
      UPDATE file_attempts SET started_at = started_at - interval '100 days', finished_at = finished_at - interval '100 days';
      UPDATE file_versions SET seen_at = seen_at - interval '100 days', processed_at = processed_at - interval '100 days';
      UPDATE runs SET started_at = started_at - interval '100 days', finished_at = finished_at - interval '100 days';`);
  });

  afterAll(async () => {
    if (passed === 3) {
      await cli(["sql", "--write", `DROP TABLE IF EXISTS ${archive} PURGE`], box.env);
      await removeSandbox(box);
    }
  });

  it("--dry-run prints what would go per table and changes nothing; the retention comes from the environment", async () => {
    const dry = await cli(["prune", "--dry-run"], box.env);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(
      /^dry run: rows settled before \S+ \(90 days\) that would be archived and deleted:\n/,
    );
    expect(dry.stdout).toContain("\n  file_attempts      5\n  file_versions      5\n");
    expect(dry.stdout).toContain("\n  runs               1\n");
    const longer = await cliJson<Report>(["prune", "--dry-run"], {
      ...box.env,
      LAKEFERRY_STATE_RETENTION_DAYS: "120",
    });
    expect(longer.deleted).toMatchObject({ file_attempts: 0, file_versions: 0, runs: 0 });
    const { rows } = await box.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM file_attempts`);
    expect(rows[0]?.n).toBe(5);
    passed++;
  });

  it("refuses an archive table that is not catalog.namespace.table", async () => {
    const bad = await cli(["prune", "--archive-table", "state_archive"], box.env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--archive-table: "state_archive" is not catalog.namespace.table');
    passed++;
  });

  it("archives to the table named and deletes, printing the rows per table", async () => {
    const report = await cliJson<Report>(
      ["prune", "--older-than-days", "30", "--archive-table", archive],
      box.env,
    );
    expect(report).toMatchObject({
      dryRun: false,
      archiveTable: archive,
      deleted: { file_attempts: 5, file_versions: 5, write_batches: 0, runs: 1, run_refusals: 0 },
      archived: 11,
    });
    const rows = await cliJson<{ source_table: string; n: number }[]>(
      [
        "sql",
        `SELECT source_table, count(*) AS n FROM ${archive} GROUP BY source_table ORDER BY source_table`,
      ],
      box.env,
    );
    expect(rows).toEqual([
      { source_table: "file_attempts", n: 5 },
      { source_table: "file_versions", n: 5 },
      { source_table: "runs", n: 1 },
    ]);
    const again = await cli(["prune", "--archive-table", archive], box.env);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`archived to ${archive} and deleted:`);
    expect(again.stdout).toContain("\n0 rows archived in ");
    passed++;
  });
});
