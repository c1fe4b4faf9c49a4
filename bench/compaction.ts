/**
 * What compaction does for a table of many small ingested files: writes `files` small JSON-lines files
 * (default 5,000, 20 rows each) through IcebergWriter in group commits of `batch` files (default 50, packed
 * as the pipeline packs small files), then prints the table's data file count and average size and the
 * median time of two queries (a count, and an aggregate with a filter) before and after
 * `rewrite_data_files` at the maintenance defaults (128 MiB target, at least 5 input files), with the
 * compaction's own time.
 *
 *   npm run bench:compaction -- [files=5000] [batch=50] [runs=5]
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { dataFileStats, IcebergWriter, rewriteDataFiles, type DataFileStats } from "@lakeferry/iceberg";
import { SparkConnectClient } from "@lakeferry/spark-connect";

const files = Number(process.argv[2] ?? 5_000);
const batchFiles = Number(process.argv[3] ?? 50);
const runs = Number(process.argv[4] ?? 5);
const remote = process.env.SPARK_REMOTE;
if (!remote) throw new Error('SPARK_REMOTE is not set; run: eval "$(bash scripts/services.sh env)"');

const ROWS_PER_FILE = 20;
const spark = new SparkConnectClient({ remote });
const writer = new IcebergWriter({ spark, isolateSourceFiles: false });
const dir = await mkdtemp(join(tmpdir(), "lakeferry-bench-compaction-"));
const table = `lake.bench_${randomUUID().replaceAll("-", "").slice(0, 12)}.events`;
const quoted = table
  .split(".")
  .map((part) => `\`${part}\``)
  .join(".");

/** The files of batch `b`, written to disk: 20 rows each, ids unique across the table. */
async function batchOfFiles(b: number, count: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const n = b * batchFiles + i;
      const path = join(dir, `f-${n}.json`);
      const rows = Array.from({ length: ROWS_PER_FILE }, (_, r) =>
        JSON.stringify({ id: n * ROWS_PER_FILE + r, region: `r${(n + r) % 16}`, amount: (n * 7 + r) % 1000 }),
      );
      await writeFile(path, rows.join("\n") + "\n");
      return `file://${path}`;
    }),
  );
}

async function ingest(): Promise<number> {
  const started = performance.now();
  for (let b = 0; b * batchFiles < files; b++) {
    const batch = await batchOfFiles(b, Math.min(batchFiles, files - b * batchFiles));
    await writer.write({
      batchId: randomUUID(),
      table,
      format: "json",
      schema: "id BIGINT, region STRING, amount INT",
      files: batch,
    });
  }
  return performance.now() - started;
}

const QUERIES = {
  count: `SELECT count(*) AS n FROM ${quoted}`,
  filteredAggregate: `SELECT region, count(*) AS n, sum(amount) AS total FROM ${quoted} WHERE amount > 500 GROUP BY region`,
};

/** Median ms of each query over `runs` runs (after one warm-up run). */
async function queryTimes(): Promise<Record<keyof typeof QUERIES, number>> {
  await spark.sqlCommand(`REFRESH TABLE ${quoted}`);
  const result = {} as Record<keyof typeof QUERIES, number>;
  for (const [name, sql] of Object.entries(QUERIES) as [keyof typeof QUERIES, string][]) {
    await spark.sql(sql);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      const started = performance.now();
      await spark.sql(sql);
      times.push(performance.now() - started);
    }
    times.sort((a, b) => a - b);
    result[name] = times[Math.floor(times.length / 2)] ?? NaN;
  }
  return result;
}

const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;
const line = (label: string, stats: DataFileStats, times: Record<string, number>): void =>
  console.log(
    `${label.padEnd(8)} data files ${String(stats.files).padStart(6)}  avg ${kib(stats.averageBytes).padStart(11)}  ` +
      `total ${kib(stats.bytes).padStart(11)}  count(*) ${times.count?.toFixed(0)} ms  ` +
      `filtered aggregate ${times.filteredAggregate?.toFixed(0)} ms`,
  );

try {
  const ingestMs = await ingest();
  console.log(
    `ingested ${files} files (${files * ROWS_PER_FILE} rows) in ${Math.ceil(files / batchFiles)} group commits of ${batchFiles}: ${(ingestMs / 1000).toFixed(1)} s`,
  );
  const before = await dataFileStats(spark, table);
  const beforeTimes = await queryTimes();
  const started = performance.now();
  const compaction = await rewriteDataFiles(spark, table, {
    targetFileSizeBytes: 128 * 1024 * 1024,
    minInputFiles: 5,
  });
  const compactionMs = performance.now() - started;
  const after = await dataFileStats(spark, table);
  const afterTimes = await queryTimes();
  line("before", before, beforeTimes);
  line("after", after, afterTimes);
  console.log(
    `compaction: ${compaction.rewrittenDataFiles} files rewritten into ${compaction.addedDataFiles} in ${(compactionMs / 1000).toFixed(1)} s; ` +
      `queries ${(beforeTimes.count / afterTimes.count).toFixed(1)}× (count) and ` +
      `${(beforeTimes.filteredAggregate / afterTimes.filteredAggregate).toFixed(1)}× (filtered aggregate) faster (medians of ${runs})`,
  );
} finally {
  await spark.sqlCommand(`DROP TABLE IF EXISTS ${quoted} PURGE`).catch(() => undefined);
  await spark.close();
  await rm(dir, { recursive: true, force: true });
}
