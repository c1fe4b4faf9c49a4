import { execFileSync } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest";
import {
  acquireMaintenanceLease,
  beginPublish,
  claimFiles,
  createDatabase,
  migrate,
  openBatch,
  recordOutcomes,
  registerFiles,
  startRun,
  upsertIngestion,
  type Database,
  type FileRef,
} from "../src/index.ts";
import { databaseUrl, listing } from "./helpers.ts";

/**
 * lakeferry's hot path through PgBouncer in transaction mode with a pool of 5 server connections
 * (`scripts/services.sh up pgbouncer`): each transaction may run on any server connection, so any session
 * state (a session advisory lock, a SET, a named prepared statement, a search_path startup parameter)
 * would break or leak here.
 */

const WORKERS = 8;
const FILES = 240;

let adminDb: Database;
/** A database of this file's own on the shared Postgres, reached through PgBouncer, with schema public. */
let databaseName: string;
let pooledUrl: string;

function withDatabase(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${name}`;
  return parsed.toString();
}

beforeAll(async () => {
  const script = process.env.LAKEFERRY_SERVICES_SCRIPT;
  const pgbouncerUrl = process.env.LAKEFERRY_PGBOUNCER_URL;
  if (!script || !pgbouncerUrl) {
    throw new Error('LAKEFERRY_PGBOUNCER_URL is not set: run `eval "$(bash scripts/services.sh env)"`');
  }
  // Idempotent: installs PgBouncer from Debian packages the first time, then only checks it answers.
  execFileSync("bash", [script, "up", "pgbouncer"], { stdio: "inherit", timeout: 300_000 });
  adminDb = createDatabase({ connectionString: databaseUrl(), maxConnections: 1 });
  databaseName = `lfpgb_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
  await adminDb.pool.query(`CREATE DATABASE ${databaseName}`);
  pooledUrl = withDatabase(pgbouncerUrl, databaseName);
}, 320_000);

afterAll(async () => {
  // FORCE ends PgBouncer's server connections to it.
  await adminDb?.pool.query(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`);
  await adminDb?.close();
});

function pooledDatabase(options: { schema?: string } = {}): Database {
  const db = createDatabase({ connectionString: pooledUrl, maxConnections: 4, ...options });
  onTestFinished(() => db.close());
  return db;
}

/**
 * Walks all files in an order of its own, 15 at a time: claims what nobody holds, opens a batch of it,
 * publishes and records it; walks again while any file is PENDING.
 */
async function workUntilDone(db: Database, worker: string, ingestionId: number, refs: FileRef[]) {
  let batches = 0;
  for (;;) {
    const order = [...refs].sort(() => Math.random() - 0.5);
    for (let start = 0; start < order.length; start += 15) {
      batches += await batchOf(db, worker, ingestionId, order.slice(start, start + 15));
    }
    const { rows } = await db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM processed_files WHERE status = 'PENDING'`,
    );
    if (rows[0]!.n === 0) return batches;
  }
}

/** Claims what it can of `refs` and takes it through one batch; returns the batches written (0 or 1). */
async function batchOf(db: Database, worker: string, ingestionId: number, refs: FileRef[]): Promise<number> {
  const claimed = await claimFiles(db, { refs, worker, leaseMs: 60_000 });
  if (claimed.length === 0) return 0;
  const files = claimed.map((c) => ({ id: c.id, version: c.version }));
  const batchId = randomUUID();
  await openBatch(db, {
    batchId,
    ingestionId,
    table: "lake.db.orders",
    worker,
    files,
    ingestedAtMicros: 1_700_000_000_000_000n,
  });
  const won = await beginPublish(db, {
    batchId,
    worker,
    stagedSnapshotId: "1",
    records: files.map((f) => ({ fileId: f.id, records: 2 })),
    publishLeaseMs: 60_000,
  });
  expect(won).toBe(true);
  await recordOutcomes(db, {
    worker,
    outcomes: files.map((f) => ({ ...f, status: "SUCCESS" as const, recordsIngested: 2, bytesRead: 10 })),
    batch: { id: batchId, state: "COMMITTED", snapshotId: "1000" },
  });
  return 1;
}

describe("through PgBouncer in transaction mode (pool of 5)", () => {
  it("migrates, registers, claims and records outcomes with 8 concurrent workers, every file once", async () => {
    const setup = pooledDatabase();
    // Two migrators at once: Prisma's lock, taken per transaction, still lets only one apply each migration.
    const [first, second] = await Promise.all([migrate(setup), migrate(pooledDatabase())]);
    expect([...first.applied, ...second.applied].sort()).toEqual(
      (
        await setup.prisma.$queryRawUnsafe<{ migration_name: string }[]>(
          `SELECT migration_name FROM _prisma_migrations ORDER BY migration_name`,
        )
      ).map((r) => r.migration_name),
    );
    // Each migration once, by one or the other (they may take turns: the lock is per migration).
    expect(new Set([...first.applied, ...second.applied]).size).toBe(
      first.applied.length + second.applied.length,
    );
    expect(first.applied.length + second.applied.length).toBeGreaterThan(10);

    const { ingestion } = await upsertIngestion(setup, {
      name: "orders",
      sourceUri: "s3://landing/orders/",
      format: "csv",
      readerOptions: { header: "true" },
      schemaDdl: null,
      glob: "*.csv",
      targetTable: "lake.db.orders",
      schedule: null,
      maxAttempts: 5,
      backoffMs: 100,
      modifiedPolicy: "ignore",
      listing: null,
      enabled: true,
    });
    const run = await startRun(setup, { ingestionId: ingestion.id, trigger: "manual" });
    const { created } = await registerFiles(setup, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: listing(0, FILES),
      modifiedPolicy: "ignore",
    });
    expect(created).toHaveLength(FILES);

    const workers = Array.from({ length: WORKERS }, () => pooledDatabase());
    const batches = await Promise.all(
      workers.map((db, i) => workUntilDone(db, `worker-${i}`, ingestion.id, created)),
    );
    expect(batches.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(FILES / 15);

    // Prisma (the driver adapter over the same pool) reads through PgBouncer too.
    expect(await setup.prisma.processedFile.count({ where: { status: "SUCCESS" } })).toBe(FILES);
    const { rows } = await setup.pool.query<{ files: number; wins: number; batches: number }>(
      `SELECT count(DISTINCT file_id)::int AS files,
              count(*) FILTER (WHERE outcome = 'SUCCESS')::int AS wins,
              count(DISTINCT batch_id) FILTER (WHERE outcome = 'SUCCESS')::int AS batches
       FROM file_attempts`,
    );
    expect(rows[0]).toMatchObject({ files: FILES, wins: FILES });
    expect(await acquireMaintenanceLease(workers[0]!, { name: "prune", holder: "a", ttlMs: 60_000 })).toBe(
      true,
    );
    expect(await acquireMaintenanceLease(workers[1]!, { name: "prune", holder: "b", ttlMs: 60_000 })).toBe(
      false,
    );

    // 8 workers × 4 client connections shared PgBouncer's 5 server connections.
    const server = await adminDb.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1`,
      [databaseName],
    );
    expect(server.rows[0]!.n).toBeGreaterThan(0);
    expect(server.rows[0]!.n).toBeLessThanOrEqual(5);
  });

  it("refuses a schema the pooled connections do not resolve to, saying how to set it", async () => {
    const db = pooledDatabase({ schema: "lakeferry_elsewhere" });
    await expect(migrate(db)).rejects.toThrow(
      /schema "lakeferry_elsewhere" is not where this pooled connection \(pgbouncer=true\) resolves table names: it resolves them to "public" .*ALTER ROLE/,
    );
  });

  it("explains PgBouncer's refusal of the search_path startup parameter when pgbouncer=true is missing", async () => {
    const url = new URL(pooledUrl);
    url.searchParams.delete("pgbouncer");
    const db = createDatabase({ connectionString: url.toString(), schema: "public", maxConnections: 1 });
    onTestFinished(() => db.close());
    await expect(migrate(db)).rejects.toThrow(/unsupported startup parameter: options.*pgbouncer=true/);
  });
});
