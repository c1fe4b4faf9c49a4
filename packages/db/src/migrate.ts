import { createHash, randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type pg from "pg";
import { inTransaction, quoteIdentifier, type Database } from "./database.ts";
import { MigrationError, classifyDatabaseError } from "./errors.ts";

/** The repository's prisma/migrations, resolved from this file (packages/db/src). */
const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL("../../../prisma/migrations", import.meta.url));

/** The advisory lock key Prisma Migrate holds while it migrates; holding the same one keeps us exclusive. */
const PRISMA_MIGRATE_LOCK_KEY = 72707369;

export interface MigrateOptions {
  /** Folder of `<name>/migration.sql` directories, applied in name order. Default: the repo's prisma/migrations. */
  migrationsDir?: string;
}

interface MigrationFile {
  name: string;
  sql: string;
  /** sha256 of the file's bytes, lowercase hex, as Prisma records it. */
  checksum: string;
}

interface MigrationRecord {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

async function readMigrations(dir: string): Promise<MigrationFile[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const names = entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
  return Promise.all(
    names.map(async (name) => {
      const bytes = await readFile(join(dir, name, "migration.sql"));
      return {
        name,
        sql: bytes.toString("utf8"),
        checksum: createHash("sha256").update(bytes).digest("hex"),
      };
    }),
  );
}

/**
 * Brings `db.schema` up to date with the SQL migrations, creating the schema if missing, and returns the
 * names of the migrations it applied (empty when already current).
 *
 * Bookkeeping is Prisma Migrate's own: rows in `_prisma_migrations` (checksum = sha256 of migration.sql),
 * taken under Prisma's advisory lock, so `prisma migrate deploy` sees the same history. Each migration
 * runs in its own transaction; one that fails is rolled back whole and leaves no history row.
 *
 * The lock is taken inside each transaction (`pg_advisory_xact_lock`, the same key as Prisma's session
 * lock, so the two still exclude each other) and the search_path is set with `SET LOCAL`: nothing outlives
 * a transaction, so migrate works through PgBouncer in transaction mode too.
 *
 * @throws MigrationError when an applied migration's file has changed since (its checksum differs), when
 *   `_prisma_migrations` shows a migration that failed part-way under Prisma and was not resolved, or when a
 *   migration's SQL fails (the error names the migration and Postgres's message).
 */
export async function migrate(db: Database, options: MigrateOptions = {}): Promise<{ applied: string[] }> {
  const migrations = await readMigrations(options.migrationsDir ?? DEFAULT_MIGRATIONS_DIR);
  const table = `${quoteIdentifier(db.schema)}."_prisma_migrations"`;
  try {
    await lockedTransaction(db, async (client) => {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdentifier(db.schema)}`);
      await client.query(`CREATE TABLE IF NOT EXISTS ${table} (
        "id"                  VARCHAR(36) PRIMARY KEY NOT NULL,
        "checksum"            VARCHAR(64) NOT NULL,
        "finished_at"         TIMESTAMPTZ,
        "migration_name"      VARCHAR(255) NOT NULL,
        "logs"                TEXT,
        "rolled_back_at"      TIMESTAMPTZ,
        "started_at"          TIMESTAMPTZ NOT NULL DEFAULT now(),
        "applied_steps_count" INTEGER NOT NULL DEFAULT 0
      )`);
    });
    const applied: string[] = [];
    for (const migration of migrations) {
      const ran = await lockedTransaction(db, async (client) => {
        // Read under the lock: a concurrent migrator may have applied it since the last transaction.
        const { rows: records } = await client.query<MigrationRecord>(
          `SELECT migration_name, checksum, finished_at, rolled_back_at FROM ${table}
           WHERE migration_name = $1 AND rolled_back_at IS NULL ORDER BY started_at`,
          [migration.name],
        );
        if (records.some((r) => r.finished_at === null)) {
          throw new MigrationError(
            migration.name,
            `migration ${migration.name} failed earlier in schema "${db.schema}" (see _prisma_migrations.logs); ` +
              `repair the schema, then mark it rolled back (prisma migrate resolve --rolled-back ${migration.name})`,
          );
        }
        const done = records.find((r) => r.finished_at !== null);
        if (done) {
          if (done.checksum !== migration.checksum) {
            throw new MigrationError(
              migration.name,
              `migration ${migration.name} was modified after it was applied to schema "${db.schema}" ` +
                `(checksum ${done.checksum}, file now ${migration.checksum}); restore the file and put ` +
                `the change in a new migration`,
            );
          }
          return false;
        }
        await applyMigration(client, table, migration);
        return true;
      });
      if (ran) applied.push(migration.name);
    }
    return { applied };
  } catch (error) {
    throw classifyDatabaseError(error, "migrate");
  }
}

/**
 * Runs `body` in one transaction holding Prisma Migrate's advisory lock, with `db.schema` first on the
 * search_path (the migrations' SQL names its tables unqualified).
 */
async function lockedTransaction<T>(db: Database, body: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  return inTransaction(db, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock($1)", [PRISMA_MIGRATE_LOCK_KEY]);
    await client.query(`SET LOCAL search_path TO ${quoteIdentifier(db.schema)}`);
    return body(client);
  });
}

async function applyMigration(client: pg.PoolClient, table: string, migration: MigrationFile): Promise<void> {
  const id = randomUUID();
  try {
    await client.query(
      `INSERT INTO ${table} (id, checksum, migration_name, started_at, applied_steps_count)
       VALUES ($1, $2, $3, clock_timestamp(), 0)`,
      [id, migration.checksum, migration.name],
    );
    await client.query(migration.sql);
    await client.query(
      `UPDATE ${table} SET finished_at = clock_timestamp(), applied_steps_count = 1 WHERE id = $1`,
      [id],
    );
  } catch (error) {
    // The transaction (rolled back by inTransaction) leaves neither schema changes nor a history row behind,
    // so once the file is fixed the next migrate simply applies it (there is nothing for `prisma migrate
    // resolve` to repair).
    const message = error instanceof Error ? error.message : String(error);
    throw new MigrationError(
      migration.name,
      `migration ${migration.name} failed and was rolled back: ${message}`,
      error,
    );
  }
}
