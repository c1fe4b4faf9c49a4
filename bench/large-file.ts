/**
 * One large JSON-lines file through the whole pipeline (discovery, queue, worker, Spark, Iceberg) with the
 * local Spark server's default memory: generates the file, ingests it, and prints the time, the rows and
 * the rate, or the reason the file was not ingested (its status and error) before anything broke.
 *
 *   eval "$(bash scripts/services.sh env)"
 *   npx tsx bench/large-file.ts [gigabytes=1] [gzip]
 *
 * `gzip` compresses the file (`.json.gz`): Hadoop cannot split it, so one Spark task reads it whole.
 * The ingestion leaves maxFileBytes unset and largeFileBytes at its default: the file is written alone,
 * with a write deadline that grows with its size.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm, stat, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import { createGzip } from "node:zlib";
import { createLogger } from "@lakeferry/core";
import { createDatabase, listFiles, migrate } from "@lakeferry/db";
import {
  applyIngestion,
  discoverFiles,
  parseIngestionSpec,
  waitForRun,
  WorkerRuntime,
  type PipelineContext,
} from "@lakeferry/pipeline";
import { IngestQueue } from "@lakeferry/queue";
import { SparkConnectClient } from "@lakeferry/spark-connect";
import { need } from "./service-env.ts";

const gigabytes = Number(process.argv[2] ?? 1);
const gzip = process.argv[3] === "gzip";
const databaseUrl = need("DATABASE_URL");
const redisUrl = need("REDIS_URL");
const sparkRemote = need("SPARK_REMOTE");
const id = randomBytes(4).toString("hex");
const logger = createLogger({
  name: "bench",
  level: (process.env.LAKEFERRY_LOG_LEVEL as "info") ?? "silent",
});

/** JSON lines of about 120 bytes each, until `bytes` bytes (uncompressed) are written. */
function* jsonLines(bytes: number): Generator<string> {
  const note = "x".repeat(40);
  let written = 0;
  for (let i = 0; written < bytes; i++) {
    let chunk = "";
    for (let j = 0; j < 10_000; j++, i++) {
      chunk += `{"id":${i},"user":"user-${i % 100_000}","amount":${(i % 10_000) / 100},"ts":"2026-12-03T10:${String(i % 60).padStart(2, "0")}:00Z","note":"${note}"}\n`;
    }
    written += Buffer.byteLength(chunk);
    yield chunk;
  }
}

async function generate(path: string): Promise<number> {
  const source = Readable.from(jsonLines(gigabytes * 1e9));
  if (gzip) await pipeline(source, createGzip({ level: 1 }), createWriteStream(path));
  else await pipeline(source, createWriteStream(path));
  // Old enough that a listing does not take it for a file still being written.
  const then = new Date(Date.now() - 60_000);
  await utimes(path, then, then);
  return (await stat(path)).size;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "lakeferry-large-file-"));
  const source = join(dir, "landing");
  await mkdir(source);
  const path = join(source, gzip ? "large.json.gz" : "large.json");
  let started = performance.now();
  const bytes = await generate(path);
  const seconds = (ms: number): string => (ms / 1000).toFixed(1);
  console.log(
    `generated ${path}: ${(bytes / 1e9).toFixed(2)} GB${gzip ? " gzip" : ""} in ${seconds(performance.now() - started)} s`,
  );

  const schema = `bench_${id}`;
  const db = createDatabase({ connectionString: databaseUrl, schema, maxConnections: 4 });
  await migrate(db);
  const queue = new IngestQueue({ redisUrl, prefix: `bench-${id}` });
  const ctx: PipelineContext = { db, queue, logger };
  const table = `lake.bench_${id}.large`;
  const spark = new SparkConnectClient({ remote: sparkRemote });
  const runtime = new WorkerRuntime({
    databaseUrl,
    redisUrl,
    sparkRemote,
    queuePrefix: `bench-${id}`,
    dbSchema: schema,
    workerId: `bench-large-${id}`,
    logger,
  });
  try {
    const { ingestion } = await applyIngestion(
      ctx,
      parseIngestionSpec({
        name: "large",
        source: `file://${source}/`,
        format: "json",
        schema: "id BIGINT, user STRING, amount DOUBLE, ts TIMESTAMP, note STRING",
        table,
        retry: { attempts: 1 },
      }),
    );
    await runtime.start();
    started = performance.now();
    const run = await discoverFiles(ctx, ingestion);
    await waitForRun(ctx, run.run.id, { timeoutMs: 3 * 3_600_000 });
    const elapsed = performance.now() - started;
    const [file] = await listFiles(db, ingestion.id);
    if (file?.status !== "SUCCESS") {
      console.log(`not ingested: ${file?.status} ${file?.errorType ?? ""}: ${file?.errorMessage ?? ""}`);
      return;
    }
    const [count] = await spark.sql(`SELECT count(*) AS n FROM ${table}`);
    console.log(
      `ingested ${file.recordsIngested} rows (${String(count?.n)} in the table) in ${seconds(elapsed)} s: ` +
        `${(bytes / 1e6 / (elapsed / 1000)).toFixed(1)} MB/s, ${Math.round((file.recordsIngested ?? 0) / (elapsed / 1000))} rows/s`,
    );
  } finally {
    await runtime.close({ timeoutMs: 10_000 });
    await spark.sql(`DROP TABLE IF EXISTS ${table} PURGE`).catch(() => {});
    await spark.close();
    await queue.close();
    await db.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
    await db.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
