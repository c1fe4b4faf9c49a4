/**
 * The whole pipeline through PgBouncer in transaction mode (`scripts/services.sh up pgbouncer`, a pool of 5
 * server connections): migrate, apply, a discovery pass, two worker runtimes claiming, writing with real
 * Spark and Iceberg, publishing and recording, every Postgres statement on whichever server connection
 * PgBouncer hands out. Each file lands once.
 */
import { createLogger, type Logger, type LogLevel } from "@lakeferry/core";
import { createDatabase, listFiles, migrate, type Database } from "@lakeferry/db";
import { IngestQueue } from "@lakeferry/queue";
import { SparkConnectClient } from "@lakeferry/spark-connect";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  applyIngestion,
  discoverFiles,
  parseIngestionSpec,
  waitForRun,
  WorkerRuntime,
  type PipelineContext,
} from "../src/index.ts";
import { env, jsonRows } from "./support.ts";

const FILES = 60;

let admin: Database;
let databaseName: string;
let pooledUrl: string;

beforeAll(async () => {
  const script = process.env.LAKEFERRY_SERVICES_SCRIPT;
  const pgbouncerUrl = process.env.LAKEFERRY_PGBOUNCER_URL;
  if (!script || !pgbouncerUrl) {
    throw new Error('LAKEFERRY_PGBOUNCER_URL is not set: run `eval "$(bash scripts/services.sh env)"`');
  }
  execFileSync("bash", [script, "up", "pgbouncer"], { stdio: "inherit", timeout: 300_000 });
  admin = createDatabase({ connectionString: env.databaseUrl, maxConnections: 1 });
  databaseName = `lfpipe_${randomBytes(4).toString("hex")}`;
  await admin.pool.query(`CREATE DATABASE ${databaseName}`);
  const url = new URL(pgbouncerUrl);
  url.pathname = `/${databaseName}`;
  pooledUrl = url.toString();
}, 320_000);

afterAll(async () => {
  await admin?.pool.query(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`);
  await admin?.close();
});

describe("through PgBouncer (transaction mode)", () => {
  it("ingests every file once with two workers sharing 5 server connections", async () => {
    const logger: Logger = createLogger({
      name: "pgbouncer-test",
      level: (process.env.LAKEFERRY_LOG_LEVEL as LogLevel | undefined) ?? "silent",
    });
    const db = createDatabase({ connectionString: pooledUrl, maxConnections: 4 });
    const prefix = `lf-pgb-${randomBytes(4).toString("hex")}`;
    const queue = new IngestQueue({ redisUrl: env.redisUrl, prefix });
    const spark = new SparkConnectClient({ remote: env.sparkRemote });
    const table = `lake.pgb_${randomBytes(4).toString("hex")}.t`;
    const runtimes: WorkerRuntime[] = [];
    try {
      await migrate(db);
      const dir = await mkdtemp(join(tmpdir(), "lakeferry-pgbouncer-"));
      const minuteAgo = new Date(Date.now() - 60_000);
      for (let i = 0; i < FILES; i++) {
        const path = join(dir, `f-${String(i).padStart(3, "0")}.json`);
        await writeFile(path, jsonRows(i * 10, (i % 3) + 1));
        await utimes(path, minuteAgo, minuteAgo);
      }
      const ctx: PipelineContext = { db, queue, logger };
      const { ingestion } = await applyIngestion(
        ctx,
        parseIngestionSpec({
          name: "pooled",
          source: `file://${dir}/`,
          format: "json",
          schema: "id BIGINT, v STRING",
          pattern: "*.json",
          table,
        }),
      );
      for (let n = 0; n < 2; n++) {
        const runtime = new WorkerRuntime({
          ...env,
          databaseUrl: pooledUrl,
          dbPoolMax: 4,
          queuePrefix: prefix,
          concurrency: 20,
          batch: { maxWaitMs: 300 },
          reconcileIntervalMs: 600_000,
          logger,
        });
        runtimes.push(runtime);
        await runtime.start();
      }
      const pass = await discoverFiles(ctx, ingestion);
      expect(await waitForRun(ctx, pass.run.id, { timeoutMs: 240_000 })).toMatchObject({
        total: FILES,
        settled: FILES,
        failed: 0,
      });
      const files = await listFiles(db, ingestion.id, { limit: 1_000 });
      expect(files.filter((file) => file.status === "SUCCESS")).toHaveLength(FILES);
      const [counted] = await spark.sql(`SELECT count(*) AS n, count(DISTINCT id) AS ids FROM ${table}`);
      const rows = Array.from({ length: FILES }, (_, i) => (i % 3) + 1).reduce((a, b) => a + b, 0);
      expect([Number(counted?.n), Number(counted?.ids)]).toEqual([rows, rows]);
    } finally {
      await Promise.all(runtimes.map((runtime) => runtime.close({ timeoutMs: 5_000 })));
      await queue.close();
      await db.close();
      await spark.close();
    }
  }, 400_000);
});
