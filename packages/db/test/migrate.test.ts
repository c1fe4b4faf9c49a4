import { createHash } from "node:crypto";
import { cp, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { MigrationError, getFile, getFilesByPaths, migrate, registerFiles } from "../src/index.ts";
import { freshDatabase, listing, newIngestion, secondConnection } from "./helpers.ts";

const repoMigrations = fileURLToPath(new URL("../../../prisma/migrations", import.meta.url));

/** The repository's migrations, in the order they apply. */
async function repoMigrationNames(): Promise<string[]> {
  const entries = await readdir(repoMigrations, { withFileTypes: true });
  return entries
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
}

async function copyOfMigrations(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "lakeferry-migrations-"));
  await cp(repoMigrations, dir, { recursive: true });
  return dir;
}

describe("migrate", () => {
  it("creates the schema, applies each migration once and records it the way Prisma Migrate does", async () => {
    const db = await freshDatabase({ migrateIt: false });
    const names = await repoMigrationNames();
    expect(names[0]).toBe("20261129000000_init");
    const first = await migrate(db);
    expect(first.applied).toEqual(names);
    expect((await migrate(db)).applied).toEqual([]);

    const sql = await readFile(join(repoMigrations, "20261129000000_init", "migration.sql"));
    const { rows } = await db.pool.query<{
      id: string;
      finished_at: Date;
      started_at: Date;
      [column: string]: unknown;
    }>(`SELECT * FROM _prisma_migrations ORDER BY migration_name`);
    expect(rows.map((r) => r.migration_name)).toEqual(names);
    const row = rows[0]!;
    expect(Object.keys(row).sort()).toEqual(
      [
        "applied_steps_count",
        "checksum",
        "finished_at",
        "id",
        "logs",
        "migration_name",
        "rolled_back_at",
        "started_at",
      ].sort(),
    );
    expect(row).toMatchObject({
      migration_name: "20261129000000_init",
      checksum: createHash("sha256").update(sql).digest("hex"),
      logs: null,
      rolled_back_at: null,
      applied_steps_count: 1,
    });
    expect(row.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(row.finished_at.getTime()).toBeGreaterThanOrEqual(row.started_at.getTime());
    // The tables landed in the test's schema, not in public.
    const { rows: tables } = await db.pool.query(
      `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name`,
      [db.schema],
    );
    expect(tables.map((t: { table_name: string }) => t.table_name)).toEqual([
      "_prisma_migrations",
      "file_attempts",
      "file_versions",
      "ingestions",
      "maintenance_leases",
      "processed_files",
      "run_refusals",
      "runs",
      "schema_changes",
      "source_cleanups",
      "submission_requests",
      "write_batch_files",
      "write_batches",
    ]);
  });

  it("lets concurrent migrators apply a migration exactly once (Prisma's advisory lock)", async () => {
    const db = await freshDatabase({ migrateIt: false });
    const other = secondConnection(db);
    const results = await Promise.all([migrate(db), migrate(other), migrate(db)]);
    const names = await repoMigrationNames();
    expect(results.flatMap((r) => r.applied).sort()).toEqual(names);
    const { rows } = await db.pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM _prisma_migrations`);
    expect(rows[0]!.n).toBe(names.length);
  });

  it("refuses a migration whose file changed after it was applied", async () => {
    const dir = await copyOfMigrations();
    const db = await freshDatabase({ migrateIt: false });
    await migrate(db, { migrationsDir: dir });
    const file = join(dir, "20261129000000_init", "migration.sql");
    await writeFile(file, (await readFile(file, "utf8")) + "\n-- an innocent-looking edit\n");

    const error = await migrate(db, { migrationsDir: dir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).migration).toBe("20261129000000_init");
    expect((error as MigrationError).message).toMatch(/was modified after it was applied/);
    expect((error as MigrationError).retryable).toBe(false);
  });

  it("applies a later migration in its own transaction and rolls a failing one back whole", async () => {
    const dir = await copyOfMigrations();
    const db = await freshDatabase({ migrateIt: false });
    await migrate(db, { migrationsDir: dir });

    await mkdir(join(dir, "20261130000000_broken"));
    await writeFile(
      join(dir, "20261130000000_broken", "migration.sql"),
      `CREATE TABLE "half_done" (id int);\nALTER TABLE "no_such_table" ADD COLUMN x int;\n`,
    );
    const error = await migrate(db, { migrationsDir: dir }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as Error).message).toMatch(
      /20261130000000_broken failed and was rolled back: .*no_such_table/,
    );
    const { rows: leftovers } = await db.pool.query<{ t: string | null }>(
      `SELECT to_regclass('half_done') AS t`,
    );
    expect(leftovers[0]!.t).toBeNull();

    await writeFile(
      join(dir, "20261130000000_broken", "migration.sql"),
      `CREATE TABLE "half_done" (id int);\n`,
    );
    expect((await migrate(db, { migrationsDir: dir })).applied).toEqual(["20261130000000_broken"]);
    const { rows } = await db.pool.query(
      `SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL ORDER BY started_at`,
    );
    expect(rows.map((r: { migration_name: string }) => r.migration_name)).toEqual([
      ...(await repoMigrationNames()),
      "20261130000000_broken",
    ]);
  });

  it("refuses to continue past a migration Prisma recorded as failed and unresolved", async () => {
    const db = await freshDatabase();
    await db.pool.query(
      `INSERT INTO _prisma_migrations (id, checksum, migration_name, logs, started_at, applied_steps_count)
       VALUES ('3f0c7c56-0000-4000-8000-000000000000', 'x', '20261129000000_init', 'boom', now(), 0)`,
    );
    await expect(migrate(db)).rejects.toThrow(/failed earlier .*prisma migrate resolve --rolled-back/);
  });

  it("keys the files already tracked when the path key arrives, and finds each by path after", async () => {
    const db = await freshDatabase({ migrateIt: false });
    const dir = await copyOfMigrations();
    await rm(join(dir, "20261207000000_file_path_key"), { recursive: true });
    await migrate(db, { migrationsDir: dir });
    const { ingestion, run } = await newIngestion(db);
    const files = listing(0, 1_000);
    await db.pool.query(
      `INSERT INTO processed_files (ingestion_id, file_path, file_size, etag, modified_at, run_id)
       SELECT $1, p, 1, 'e', now(), $2 FROM unnest($3::text[]) AS p`,
      [ingestion.id, run.id, files.map((f) => f.uri)],
    );

    expect((await migrate(db)).applied).toEqual(["20261207000000_file_path_key"]);
    const { rows } = await db.pool.query<{ name: string }>(
      `SELECT indexname AS name FROM pg_indexes WHERE schemaname = $1 AND tablename = 'processed_files'
       AND (indexname LIKE 'processed_files_ingestion_id_%' OR indexname LIKE '%path_key%') ORDER BY 1`,
      [db.schema],
    );
    expect(rows.map((row) => row.name)).toEqual([
      "processed_files_file_path_key_key",
      "processed_files_ingestion_id_status_id_idx",
    ]);
    expect(await getFile(db, ingestion.id, files[500]!.uri)).toMatchObject({ filePath: files[500]!.uri });
    expect(
      (
        await getFilesByPaths(
          db,
          ingestion.id,
          files.map((f) => f.uri),
        )
      ).size,
    ).toBe(1_000);
    // Registering a tracked path again finds its row by key: nothing new, nothing refused.
    const again = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: files.slice(0, 10).map((f) => ({ ...f, size: 1, etag: "e" })),
      modifiedPolicy: "append",
    });
    expect(again.created).toEqual([]);
    expect(again.refused).toEqual([]);
  });
});
