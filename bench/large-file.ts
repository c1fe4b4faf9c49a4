/**
 * One large JSON-lines file through the whole pipeline (discovery, queue, worker, Spark, Iceberg) with the
 * local Spark server's default memory: generates the file, ingests it, and prints the time, the rows and
 * the rate, or the reason the file was not ingested (its status and error) before anything broke.
 *
 *   eval "$(bash scripts/services.sh env)"
 *   npx tsx bench/large-file.ts [gigabytes=1] [gzip|zstd]
 *
 * `gzip` compresses the file (`.json.gz`, level 1), `zstd` with the zstd command (`.json.zst`, level 3,
 * read by lakeferry's zstd codec on the Spark server): neither can be split, so one Spark task reads it whole.
 * The ingestion leaves maxFileBytes unset and largeFileBytes at its default: the file is written alone,
 * with a write deadline that grows with its size.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
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
const compression = process.argv[3];
if (compression !== undefined && compression !== "gzip" && compression !== "zstd") {
  throw new Error(`bench/large-file.ts: compression "${compression}" is not gzip or zstd`);
}
const extension = compression === "gzip" ? ".gz" : compression === "zstd" ? ".zst" : "";
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
  if (compression === "gzip") await pipeline(source, createGzip({ level: 1 }), createWriteStream(path));
  else if (compression === "zstd") await zstdInto(source, path);
  else await pipeline(source, createWriteStream(path));
  // Old enough that a listing does not take it for a file still being written.
  const then = new Date(Date.now() - 60_000);
  await utimes(path, then, then);
  return (await stat(path)).size;
}

/** Compresses `source` into `path` with the zstd command (Node has no zstd of its own). */
async function zstdInto(source: Readable, path: string): Promise<void> {
  const zstd = spawn("zstd", ["-3", "-q", "-c"], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = once(zstd, "close");
  await Promise.all([pipeline(source, zstd.stdin), pipeline(zstd.stdout, createWriteStream(path))]);
  const [code] = (await exited) as [number | null];
  if (code !== 0) throw new Error(`zstd exited with ${String(code)} while compressing ${path}`);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "lakeferry-large-file-"));
  const source = join(dir, "landing");
  await mkdir(source);
  const path = join(source, `large.json${extension}`);
  let started = performance.now();
  const bytes = await generate(path);
  const seconds = (ms: number): string => (ms / 1000).toFixed(1);
  console.log(
    `generated ${path}: ${(bytes / 1e6).toFixed(1)} MB${compression ? ` ${compression}` : ""} in ${seconds(performance.now() - started)} s`,
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
