/**
 * State retention against real Postgres, Spark and Iceberg: prune archives exactly what is old and settled
 * to the audit table and deletes it, keeps what is in flight or recent, a dry run changes nothing, a pruned
 * file is not ingested again when discovery lists it again, and a prune that stops between archive and
 * delete loses nothing.
 */
import {
  claimFiles,
  finishRun,
  listFiles,
  openBatch,
  recordOutcomes,
  registerFiles,
  startRun,
  statusCounts,
  takePeriodicTurn,
  type Ingestion,
} from "@lakeferry/db";
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import {
  DiscovererRuntime,
  discoverFiles,
  PruneBusyError,
  StatePruner,
  waitForRun,
  type StatePrunerOptions,
} from "../src/index.ts";
import { createWorld, env, eventually, jsonRows, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

const DAY_MS = 86_400_000;
const TABLES = [
  "file_attempts",
  "file_versions",
  "write_batches",
  "write_batch_files",
  "runs",
  "run_refusals",
  "processed_files",
] as const;

function pruner(w: TestWorld, options: Partial<StatePrunerOptions> = {}): StatePruner {
  return new StatePruner({
    db: w.db,
    spark: w.spark,
    logger: w.logger,
    archiveTable: w.table("state_archive"),
    // Small windows and chunks, so that a few rows take several of each.
    windowRows: 10,
    archiveChunkRows: 4,
    ...options,
  });
}

/** Rows per table now. */
async function rowCounts(w: TestWorld): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of TABLES) {
    const { rows } = await w.db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
    counts[table] = rows[0]?.n ?? 0;
  }
  return counts;
}

/** Moves every timestamp of the rows there are now `days` back, as if they were written then. */
async function ageEverything(w: TestWorld, days: number): Promise<void> {
  const by = `interval '${days} days'`;
  await w.db.pool.query(`
    UPDATE file_attempts SET started_at = started_at - ${by}, finished_at = finished_at - ${by};
    UPDATE file_versions SET seen_at = seen_at - ${by}, processed_at = processed_at - ${by};
    UPDATE processed_files SET discovered_at = discovered_at - ${by}, processed_at = processed_at - ${by},
      processing_started_at = processing_started_at - ${by};
    UPDATE write_batches SET created_at = created_at - ${by}, resolved_at = resolved_at - ${by};
    UPDATE runs SET started_at = started_at - ${by}, finished_at = finished_at - ${by};`);
}

/** Primary keys of a table's rows, as the archive names them. */
async function keysOf(w: TestWorld, table: string): Promise<string[]> {
  const key: Record<string, string> = {
    file_attempts: "id::text",
    file_versions: "file_id || '/' || version",
    write_batches: "id::text",
    write_batch_files: "batch_id || '/' || file_id",
    runs: "id::text",
    run_refusals: "id::text",
  };
  const { rows } = await w.db.pool.query<{ k: string }>(`SELECT ${key[table]} AS k FROM ${table}`);
  return rows.map((row) => row.k).sort();
}

/** The archive's rows: keys per source table (sorted), and each row's JSON by table and key. */
async function archived(
  w: TestWorld,
): Promise<{ keys: Record<string, string[]>; json: Map<string, Record<string, unknown>> }> {
  const table = w
    .table("state_archive")
    .split(".")
    .map((part) => `\`${part}\``)
    .join(".");
  await w.spark.sqlCommand(`REFRESH TABLE ${table}`);
  const rows = await w.spark.sql(`SELECT source_table, row_key, row_json FROM ${table}`);
  const keys: Record<string, string[]> = {};
  const json = new Map<string, Record<string, unknown>>();
  for (const row of rows) {
    const source = String(row.source_table);
    (keys[source] ??= []).push(String(row.row_key));
    json.set(`${source}:${String(row.row_key)}`, JSON.parse(String(row.row_json)) as Record<string, unknown>);
  }
  for (const list of Object.values(keys)) list.sort();
  return { keys, json };
}

/**
 * Three files ingested for real (attempts, versions, a committed batch, a run), then aged 100 days; beside
 * them, as old: a file waiting for a retry (its failed attempt), a file being written in an OPEN batch, a
 * finished run with refusals and a run still running; and a file settled just now.
 */
async function mixedState(w: TestWorld): Promise<{ ingestion: Ingestion; keep: Record<string, string[]> }> {
  for (const name of ["a", "b", "c"]) await w.file(`${name}.json`, jsonRows(0, 2));
  const ingestion = await w.ingestion({ modified: "append" });
  const runtime = await w.worker();
  const first = await discoverFiles(w, ingestion);
  expect(await waitForRun(w, first.run.id, { timeoutMs: 120_000 })).toMatchObject({ settled: 3, failed: 0 });
  await runtime.close({ timeoutMs: 5_000 });

  const at = new Date("2026-09-01T00:00:00Z");
  const listed = (name: string) => ({
    uri: `file://${w.dir}/elsewhere/${name}.json`,
    size: 5,
    etag: name,
    modifiedAt: at,
  });
  const other = await startRun(w.db, { ingestionId: ingestion.id, trigger: "upstream" });
  const { created } = await registerFiles(w.db, {
    ingestionId: ingestion.id,
    runId: other.id,
    files: [listed("retrying"), listed("writing")],
    modifiedPolicy: "append",
  });
  const [retrying, writing] = created;
  if (!retrying || !writing) throw new Error("files not registered");
  await finishRun(w.db, other.id, {
    filesFound: 3,
    filesNew: 2,
    filesModified: 0,
    refused: [{ path: "../outside.json", reason: "outside the source" }],
  });
  await claimFiles(w.db, { refs: [retrying], worker: "w1", leaseMs: 60_000 });
  await recordOutcomes(w.db, {
    worker: "w1",
    outcomes: [{ ...retrying, status: "PENDING", errorType: "SPARK_UNAVAILABLE", errorMessage: "down" }],
  });
  await claimFiles(w.db, { refs: [writing], worker: "w2", leaseMs: 200 * DAY_MS });
  const openBatchId = randomUUID();
  await openBatch(w.db, {
    batchId: openBatchId,
    ingestionId: ingestion.id,
    table: ingestion.targetTable,
    worker: "w2",
    files: [writing],
    ingestedAtMicros: 1n,
  });
  const running = await startRun(w.db, { ingestionId: ingestion.id, trigger: "schedule" });
  await ageEverything(w, 100);

  const recentRun = await startRun(w.db, { ingestionId: ingestion.id, trigger: "upstream" });
  const recent = await registerFiles(w.db, {
    ingestionId: ingestion.id,
    runId: recentRun.id,
    files: [listed("recent")],
    modifiedPolicy: "append",
  });
  await finishRun(w.db, recentRun.id, { filesFound: 1, filesNew: 1, filesModified: 0 });
  await claimFiles(w.db, { refs: recent.created, worker: "w3", leaseMs: 60_000 });
  await recordOutcomes(w.db, {
    worker: "w3",
    outcomes: recent.created.map((f) => ({ ...f, status: "SUCCESS" })),
  });

  const attempts = await w.db.pool.query<{ id: string }>(
    `SELECT fa.id::text FROM file_attempts fa WHERE fa.file_id = ANY($1::bigint[]) ORDER BY fa.id`,
    [[retrying.id, writing.id, ...recent.created.map((f) => f.id)]],
  );
  const keep = {
    file_attempts: attempts.rows.map((row) => row.id).sort(),
    file_versions: [retrying, writing, ...recent.created].map((f) => `${f.id}/${f.version}`).sort(),
    write_batches: [openBatchId],
    write_batch_files: [`${openBatchId}/${writing.id}`],
    runs: [running.id, recentRun.id].map(String).sort(),
    run_refusals: [],
  };
  return { ingestion, keep };
}

describe("StatePruner", () => {
  it("archives and deletes exactly the old, settled rows; keeps what is in flight or recent; a dry run changes nothing", async () => {
    const w = (world = await createWorld());
    const { ingestion, keep } = await mixedState(w);
    const before = await rowCounts(w);
    const all: Record<string, string[]> = {};
    for (const table of Object.keys(keep)) all[table] = await keysOf(w, table);
    const expectedGone = Object.fromEntries(
      Object.entries(all).map(([table, keys]) => [table, keys.filter((k) => !keep[table]?.includes(k))]),
    );
    // The real ingestion left one attempt, version and batch member per file, and a run.
    expect(expectedGone.file_attempts).toHaveLength(3);
    expect(expectedGone.file_versions).toHaveLength(3);
    expect(expectedGone.write_batch_files).toHaveLength(3);
    expect(expectedGone.runs).toHaveLength(2);
    expect(expectedGone.run_refusals).toHaveLength(1);

    const counts = Object.fromEntries(
      Object.entries(expectedGone).map(([table, keys]) => [table, keys.length]),
    );
    const dry = await pruner(w, { spark: undefined }).prune({ dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, archiveTable: null, archived: 0, deleted: counts });
    expect(await rowCounts(w)).toEqual(before);

    const report = await pruner(w, { retentionMs: 90 * DAY_MS }).prune();
    expect(report).toMatchObject({ dryRun: false, archiveTable: w.table("state_archive"), deleted: counts });
    expect(report.archived).toBe(Object.values(counts).reduce((sum, n) => sum + n, 0));
    for (const [table, keys] of Object.entries(keep))
      expect({ table, keys: await keysOf(w, table) }).toEqual({ table, keys });
    expect((await rowCounts(w)).processed_files).toBe(before.processed_files);

    // The archive holds each pruned row once, whole.
    const archive = await archived(w);
    const nonEmpty = Object.fromEntries(Object.entries(expectedGone).filter(([, keys]) => keys.length > 0));
    expect(archive.keys).toEqual(nonEmpty);
    const attempt = archive.json.get(`file_attempts:${expectedGone.file_attempts?.[0]}`);
    expect(attempt).toMatchObject({ outcome: "SUCCESS", attempt: 1, version: 1 });
    expect(archive.json.get(`run_refusals:${expectedGone.run_refusals?.[0]}`)).toMatchObject({
      path: "../outside.json",
      reason: "outside the source",
    });

    // Nothing more is old enough; and the pruned files are not ingested again when listed again.
    expect((await pruner(w).prune()).archived).toBe(0);
    const again = await discoverFiles(w, ingestion);
    expect(again).toMatchObject({ found: 3, created: 0, modified: 0, enqueued: 0 });
    const files = await listFiles(w.db, ingestion.id);
    expect(files.filter((f) => f.filePath.endsWith("/a.json"))).toMatchObject([
      { status: "SUCCESS", version: 1 },
    ]);
    expect(await statusCounts(w.db, ingestion.id)).toMatchObject({ SUCCESS: 4, PENDING: 1, PROCESSING: 1 });
    // A pruned file that does change is a new version, numbered after the last.
    await w.file("a.json", jsonRows(0, 3));
    expect(await discoverFiles(w, ingestion)).toMatchObject({ created: 0, modified: 1 });
    expect((await listFiles(w.db, ingestion.id)).find((f) => f.filePath.endsWith("/a.json"))).toMatchObject({
      status: "PENDING",
      version: 2,
    });
  });

  it("loses nothing when it stops between archive and delete: the next prune archives again and deletes", async () => {
    const w = (world = await createWorld());
    await mixedState(w);
    const gone = await keysOf(w, "file_attempts");
    // The delete fails, as if Postgres went away after the archive's commit.
    await w.db.pool.query(`
      CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'delete refused by the test'; END $$;
      CREATE TRIGGER refuse_delete BEFORE DELETE ON file_attempts FOR EACH ROW EXECUTE FUNCTION refuse_delete();`);
    await expect(pruner(w).prune()).rejects.toThrow(/delete refused by the test/);
    expect(await keysOf(w, "file_attempts")).toEqual(gone);
    const firstArchive = await archived(w);
    expect(firstArchive.keys.file_attempts?.length).toBeGreaterThan(0);

    await w.db.pool.query(`DROP TRIGGER refuse_delete ON file_attempts`);
    const report = await pruner(w).prune();
    expect(report.deleted.file_attempts).toBe(3);
    const kept = await keysOf(w, "file_attempts");
    const pruned = gone.filter((key) => !kept.includes(key));
    const archive = await archived(w);
    // Every pruned row is in the archive; those archived twice have the same key (and row).
    expect(new Set(archive.keys.file_attempts)).toEqual(new Set(pruned));
    expect(archive.keys.file_attempts?.length).toBe(
      pruned.length + (firstArchive.keys.file_attempts?.length ?? 0),
    );
  });

  it("runs one prune at a time across the fleet, and takes its scheduled turn at most once per interval", async () => {
    const w = (world = await createWorld());
    const first = pruner(w, { holder: "first" });
    const second = pruner(w, { holder: "second" });
    // A prune in progress holds the lease (taken here as a prune would).
    await w.db.pool.query(
      `INSERT INTO maintenance_leases (name, holder, expires_at) VALUES ('state-prune', 'first', now() + interval '1 minute')`,
    );
    await expect(second.prune()).rejects.toBeInstanceOf(PruneBusyError);
    expect((await first.prune({ dryRun: true })).dryRun).toBe(true);
    // Its holder prunes; with nothing old enough, no archive table is created.
    expect(await first.prune()).toMatchObject({ dryRun: false, archived: 0 });
    const namespace = w.table("state_archive").split(".").slice(0, 2).join(".");
    const tables = await w.spark.sql(`SHOW TABLES IN ${namespace}`).catch(() => []);
    expect(tables.map((t) => t.tableName)).not.toContain("state_archive");
    expect(
      await takePeriodicTurn(w.db, { name: "state-prune:schedule", holder: "first", everyMs: DAY_MS }),
    ).toBe(true);
    expect(
      await takePeriodicTurn(w.db, { name: "state-prune:schedule", holder: "first", everyMs: DAY_MS }),
    ).toBe(false);
    expect(
      await takePeriodicTurn(w.db, { name: "state-prune:schedule", holder: "second", everyMs: DAY_MS }),
    ).toBe(false);
    await w.db.pool.query(
      `UPDATE maintenance_leases SET expires_at = now() WHERE name = 'state-prune:schedule'`,
    );
    expect(
      await takePeriodicTurn(w.db, { name: "state-prune:schedule", holder: "second", everyMs: DAY_MS }),
    ).toBe(true);
  });

  it("is scheduled by discoverers with Spark: one of the fleet prunes, once per interval", async () => {
    const w = (world = await createWorld());
    const ingestion = await w.ingestion();
    const run = await startRun(w.db, { ingestionId: ingestion.id, trigger: "manual" });
    const files = ["x", "y"].map((name) => ({
      uri: `file://${w.dir}/${name}.json`,
      size: 1,
      etag: name,
      modifiedAt: new Date("2026-08-01T00:00:00Z"),
    }));
    const { created } = await registerFiles(w.db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files,
      modifiedPolicy: "ignore",
    });
    await claimFiles(w.db, { refs: created, worker: "w", leaseMs: 60_000 });
    await recordOutcomes(w.db, { worker: "w", outcomes: created.map((f) => ({ ...f, status: "SUCCESS" })) });
    await finishRun(w.db, run.id, { filesFound: 2, filesNew: 2, filesModified: 0 });
    await ageEverything(w, 100);

    const discoverers = [1, 2].map(
      () =>
        new DiscovererRuntime({
          ...env,
          dbSchema: w.schema,
          queuePrefix: w.prefix,
          logger: w.logger,
          statePrune: { everyMs: 3_000, archiveTable: w.table("state_archive") },
        }),
    );
    try {
      await Promise.all(discoverers.map((d) => d.start()));
      await eventually("the scheduled prune", async () => {
        const counts = await rowCounts(w);
        return counts.file_attempts === 0 && counts.runs === 0 ? counts : undefined;
      });
      // Both asked within the interval; one turn was taken, so the archive holds each row once.
      const archive = await archived(w);
      expect(archive.keys).toEqual({
        file_attempts: (archive.keys.file_attempts ?? []).slice(),
        file_versions: created.map((f) => `${f.id}/1`).sort(),
        runs: [String(run.id)],
      });
      expect(archive.keys.file_attempts).toHaveLength(2);
      const turn = await w.db.pool.query<{ holder: string }>(
        `SELECT holder FROM maintenance_leases WHERE name = 'state-prune:schedule'`,
      );
      expect(turn.rows).toHaveLength(1);
    } finally {
      await Promise.all(discoverers.map((d) => d.close({ timeoutMs: 5_000 })));
    }
  });
});
