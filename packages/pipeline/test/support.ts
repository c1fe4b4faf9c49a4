import { createLogger, errorMessage, type Logger, type LogLevel } from "@lakeferry/core";
import { createDatabase, getIngestion, migrate, type Database, type Ingestion } from "@lakeferry/db";
import { IcebergWriter } from "@lakeferry/iceberg";
import { IngestQueue } from "@lakeferry/queue";
import { SparkConnectClient } from "@lakeferry/spark-connect";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  applyIngestion,
  parseIngestionSpec,
  WorkerRuntime,
  type PipelineContext,
  type WorkerRuntimeOptions,
} from "../src/index.ts";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: eval "$(bash scripts/services.sh env)" first`);
  return value;
}

export const env = {
  databaseUrl: required("DATABASE_URL"),
  redisUrl: required("REDIS_URL"),
  sparkRemote: required("SPARK_REMOTE"),
};

const id = (): string => randomBytes(5).toString("hex");

/** One test's world: its own Postgres schema, queue prefix, Iceberg namespace and source folder. */
export interface TestWorld extends PipelineContext {
  schema: string;
  prefix: string;
  dir: string;
  /** A table name in a namespace of this test's own. */
  table(name?: string): string;
  /** Creates (or updates) an ingestion over `source` (default this test's folder). */
  ingestion(spec?: Record<string, unknown>): Promise<Ingestion>;
  /** The ingestion as stored now. */
  reload(name: string): Promise<Ingestion>;
  /** Writes a file under the folder; returns its URI. */
  file(relative: string, content: string): Promise<string>;
  /** Starts a worker runtime on this world. */
  worker(options?: Partial<WorkerRuntimeOptions>): Promise<WorkerRuntime>;
  /** A Spark session for checking tables. */
  spark: SparkConnectClient;
  writer: IcebergWriter;
  close(): Promise<void>;
}

export async function createWorld(): Promise<TestWorld> {
  const suffix = id();
  const schema = `pipeline_${suffix}`;
  const prefix = `lf-pipeline-${suffix}`;
  const namespace = `p_${suffix}`;
  const db: Database = createDatabase({ connectionString: env.databaseUrl, schema });
  await migrate(db);
  const queue = new IngestQueue({ redisUrl: env.redisUrl, prefix });
  const dir = await mkdtemp(join(tmpdir(), "lakeferry-pipeline-"));
  const logger: Logger = createLogger({
    name: "pipeline-test",
    level: (process.env.LAKEFERRY_LOG_LEVEL as LogLevel | undefined) ?? "silent",
  });
  const spark = new SparkConnectClient({ remote: env.sparkRemote });
  const writer = new IcebergWriter({ spark });
  const runtimes: WorkerRuntime[] = [];
  const ctx: PipelineContext = { db, queue, logger };
  const world: TestWorld = {
    ...ctx,
    schema,
    prefix,
    dir,
    spark,
    writer,
    table: (name = "t") => `lake.${namespace}.${name}`,
    async ingestion(spec = {}) {
      const input = parseIngestionSpec({
        name: "orders",
        source: `file://${dir}/`,
        format: "json",
        schema: "id BIGINT, v STRING",
        pattern: "**/*.json",
        table: `lake.${namespace}.t`,
        retry: { attempts: 3, backoffMs: 200 },
        ...spec,
      });
      // Applied under a policy that lets the tests' secrets (temp folders) and emulators (loopback) through:
      // the policy each test's own context gives is checked where the references are resolved.
      const applying = {
        ...ctx,
        storeOptions: () => ({
          env: { LAKEFERRY_SECRET_DIRS: tmpdir(), LAKEFERRY_ALLOWED_ENDPOINTS: "127.0.0.1" },
        }),
      };
      return (await applyIngestion(applying, input)).ingestion;
    },
    async reload(name) {
      const ingestion = await getIngestion(db, name);
      if (!ingestion) throw new Error(`no ingestion ${name}`);
      return ingestion;
    },
    async file(relative, content) {
      const path = join(dir, relative);
      await mkdir(dirname(path), { recursive: true });
      await writeFile(path, content);
      await backdate(path);
      return `file://${path}`;
    },
    async worker(options = {}) {
      const runtime = new WorkerRuntime({
        ...env,
        queuePrefix: prefix,
        dbSchema: schema,
        concurrency: 50,
        batch: { maxWaitMs: 300 },
        reconcileIntervalMs: 600_000,
        logger,
        ...options,
      });
      runtimes.push(runtime);
      await runtime.start();
      return runtime;
    },
    async close() {
      await Promise.all(runtimes.map((runtime) => runtime.close({ timeoutMs: 5_000 })));
      await queue.close();
      await db.close();
      await spark.close();
    },
  };
  return world;
}

/**
 * Sets a file's modification time a minute back: a file a test wrote whole is complete, and the default
 * `listing.minAgeMs` of a local source (5 s) would otherwise leave it for a later discovery pass.
 */
export async function backdate(path: string): Promise<void> {
  const past = new Date(Date.now() - 60_000);
  await utimes(path, past, past);
}

/** JSON lines of `count` rows whose ids start at `first`. */
export function jsonRows(first: number, count: number): string {
  return Array.from(
    { length: count },
    (_, i) => JSON.stringify({ id: first + i, v: `row-${first + i}` }) + "\n",
  ).join("");
}

/** Polls `check` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 90_000,
  pollMs = 250,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${last ? `: ${errorMessage(last)}` : ""}`);
    }
    await sleep(pollMs);
  }
}

/** Rows per `_source_file` in a table. */
export async function rowsPerFile(spark: SparkConnectClient, table: string): Promise<Record<string, number>> {
  const rows = await spark.sql(`SELECT _source_file AS f, count(*) AS n FROM ${table} GROUP BY _source_file`);
  return Object.fromEntries(rows.map((row) => [String(row.f), Number(row.n)]));
}

/**
 * The snapshots that published a batch on the table's current lineage, oldest first, with the batch id:
 * the staged snapshot itself when publishing fast-forwarded the table, else Iceberg's cherry-picked copy
 * (`published-wap-id`). Staged snapshots never published, and the empty snapshot that creates a table, are
 * left out.
 */
export async function snapshotsOf(
  spark: SparkConnectClient,
  table: string,
): Promise<{ snapshotId: string; operation: string; batchId: string | null }[]> {
  const rows = await spark.sql(
    `SELECT CAST(s.snapshot_id AS STRING) AS id, s.operation,
            coalesce(s.summary['published-wap-id'], s.summary['lakeferry.batch-id']) AS batch
       FROM ${table}.snapshots s JOIN ${table}.history h ON h.snapshot_id = s.snapshot_id
      WHERE h.is_current_ancestor
        AND coalesce(s.summary['published-wap-id'], s.summary['lakeferry.batch-id']) IS NOT NULL
      ORDER BY s.committed_at`,
  );
  return rows.map((row) => ({
    snapshotId: String(row.id),
    operation: String(row.operation),
    batchId: typeof row.batch === "string" ? row.batch : null,
  }));
}
