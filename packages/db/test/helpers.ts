import { randomBytes } from "node:crypto";
import { onTestFinished } from "vitest";
import {
  createDatabase,
  migrate,
  startRun,
  upsertIngestion,
  type Database,
  type Ingestion,
  type ListedFile,
  type ModifiedPolicy,
  type Run,
} from "../src/index.ts";

export function databaseUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set: run `eval "$(bash scripts/services.sh env)"`');
  return url;
}

/** A schema name no other test uses. */
export function uniqueSchema(prefix = "db"): string {
  return `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString("hex")}`;
}

/**
 * A Database on a fresh, migrated schema of its own. Closed when the test finishes; the schema is
 * dropped if the test passed and left for inspection if it failed.
 */
export async function freshDatabase(
  options: { schema?: string; migrateIt?: boolean } = {},
): Promise<Database> {
  const db = createDatabase({
    connectionString: databaseUrl(),
    schema: options.schema ?? uniqueSchema(),
    maxConnections: 4,
  });
  onTestFinished(async (context) => {
    if (context.task.result?.state !== "fail") {
      await db.pool.query(`DROP SCHEMA IF EXISTS "${db.schema}" CASCADE`);
    }
    await db.close();
  });
  if (options.migrateIt !== false) await migrate(db);
  return db;
}

/** A second Database (its own pool) on the same schema, closed when the test finishes. */
export function secondConnection(db: Database): Database {
  const other = createDatabase({ connectionString: databaseUrl(), schema: db.schema, maxConnections: 4 });
  onTestFinished(() => other.close());
  return other;
}

export async function newIngestion(
  db: Database,
  overrides: { name?: string; modifiedPolicy?: ModifiedPolicy } = {},
): Promise<{ ingestion: Ingestion; run: Run }> {
  const { ingestion } = await upsertIngestion(db, {
    name: overrides.name ?? "orders",
    sourceUri: "s3://landing/orders/",
    format: "csv",
    readerOptions: { header: "true" },
    schemaDdl: null,
    glob: "*.csv",
    targetTable: "lake.db.orders",
    schedule: null,
    maxAttempts: 3,
    backoffMs: 100,
    modifiedPolicy: overrides.modifiedPolicy ?? "ignore",
    listing: null,
    enabled: true,
  });
  const run = await startRun(db, { ingestionId: ingestion.id, trigger: "manual" });
  return { ingestion, run };
}

/** Listed objects s3://landing/orders/f<from>.csv … f<to-1>.csv. */
export function listing(from: number, to: number, etag = "e1"): ListedFile[] {
  const files: ListedFile[] = [];
  for (let i = from; i < to; i++) {
    files.push({
      uri: `s3://landing/orders/f${String(i).padStart(5, "0")}.csv`,
      size: 100 + i,
      etag: `${etag}-${i}`,
      modifiedAt: new Date("2026-11-01T00:00:00Z"),
    });
  }
  return files;
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 5000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/**
 * How many backends wait, directly or down a chain, on the transaction of backend `pid` (later waiters
 * queue behind the first one's tuple lock, so the whole chain is followed).
 */
export async function blockedBehind(db: Database, pid: number): Promise<number> {
  const { rows } = await db.pool.query<{ n: number }>(
    `WITH RECURSIVE chain(pid) AS (
       SELECT a.pid FROM pg_stat_activity a WHERE $1 = ANY(pg_blocking_pids(a.pid))
       UNION
       SELECT a.pid FROM pg_stat_activity a JOIN chain c ON c.pid = ANY(pg_blocking_pids(a.pid))
     )
     SELECT count(*)::int AS n FROM chain`,
    [pid],
  );
  return rows[0]!.n;
}

/**
 * Makes a race deterministic: holds row locks (taken by `lockSql`) in an open transaction, starts the
 * contenders, waits until `waiters` backends are blocked behind that transaction (so every contender has
 * already read its snapshot, directly or queued behind another waiter), then commits and lets them all go at once.
 */
export async function raceBehindLock<T>(
  db: Database,
  lockSql: string,
  contenders: () => Promise<T>[],
  waiters: number,
): Promise<T[]> {
  const client = await db.pool.connect();
  try {
    await client.query("BEGIN");
    await client.query(lockSql);
    const { rows } = await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
    const pid = rows[0]!.pid;
    const all = Promise.all(contenders());
    all.catch(() => undefined);
    await eventually(
      `${waiters} backends blocked behind pid ${pid}`,
      async () => {
        return (await blockedBehind(db, pid)) >= waiters ? true : undefined;
      },
      30_000,
    );
    await client.query("COMMIT");
    return await all;
  } finally {
    client.release();
  }
}
