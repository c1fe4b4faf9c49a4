/**
 * What reading CSV files by their own header costs: 100-file batches of small CSV files (10 rows each; both
 * numbers are arguments)
 * staged and published through IcebergWriter, median wall time and median header check (the `headersMs`
 * of the staged write's timings) of each case:
 * - no header line (`header` off, declared schema): no header check, the baseline;
 * - one header, declared schema in the header's order: the check only (its names need no Spark call);
 * - one header, inferred columns: the check only;
 * - two header orders (half the files each), declared schema / inferred columns: the check, then two groups read
 *   and combined by name.
 *
 *   eval "$(bash scripts/services.sh env)"
 *   npx tsx bench/csv-headers.ts [runs=3] [files=100] [rows=10]
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IcebergWriter, type WriteBatch } from "@lakeferry/iceberg";
import { SparkConnectClient } from "@lakeferry/spark-connect";

const runs = Number(process.argv[2] ?? 3);
const filesPerBatch = Number(process.argv[3] ?? 100);
const rowsPerFile = Number(process.argv[4] ?? 10);
const remote = process.env.SPARK_REMOTE;
if (!remote) throw new Error('SPARK_REMOTE is not set; run: eval "$(bash scripts/services.sh env)"');

const spark = new SparkConnectClient({ remote });
const writer = new IcebergWriter({ spark });
const dir = await mkdtemp(join(tmpdir(), "lakeferry-bench-csv-"));
const namespace = `lake.bench_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
const SCHEMA = "id BIGINT, name STRING, price DOUBLE";

let fileCount = 0;
/** `n` new CSV files of `rowsPerFile` rows; with two layouts every second file names its columns id,price,name. */
async function newFiles(n: number, layout: "none" | "same" | "two"): Promise<string[]> {
  return Promise.all(
    Array.from({ length: n }, async (_, index) => {
      const number = fileCount++;
      const path = join(dir, `f-${number}.csv`);
      const swapped = layout === "two" && index % 2 === 1;
      const header = layout === "none" ? [] : [swapped ? "id,price,name" : "id,name,price"];
      const rows = Array.from({ length: rowsPerFile }, (_, i) =>
        swapped ? `${number * rowsPerFile + i},${i}.5,n${i}` : `${number * rowsPerFile + i},n${i},${i}.5`,
      );
      await writeFile(path, [...header, ...rows].join("\n") + "\n");
      return `file://${path}`;
    }),
  );
}

interface Case {
  name: string;
  layout: "none" | "same" | "two";
  batch: Partial<WriteBatch>;
}

const cases: Case[] = [
  { name: "no header (baseline)", layout: "none", batch: { schema: SCHEMA, options: { header: "false" } } },
  { name: "1 header, declared", layout: "same", batch: { schema: SCHEMA, options: { header: "true" } } },
  { name: "1 header, inferred", layout: "same", batch: { options: { header: "true", inferSchema: "true" } } },
  { name: "2 orders, declared", layout: "two", batch: { schema: SCHEMA, options: { header: "true" } } },
  { name: "2 orders, inferred", layout: "two", batch: { options: { header: "true", inferSchema: "true" } } },
];

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

try {
  await spark.sql("SELECT 1");
  console.log(
    `median of ${runs} runs, ${filesPerBatch} files of ${rowsPerFile} rows a batch, Spark ${await spark.version()}`,
  );
  for (const [index, each] of cases.entries()) {
    const table = `${namespace}.t${index}`;
    const write = async (): Promise<{ ms: number; headersMs: number }> => {
      const files = await newFiles(filesPerBatch, each.layout);
      const started = performance.now();
      const batch: WriteBatch = { batchId: randomUUID(), table, format: "csv", files, ...each.batch };
      const staged = await writer.stage(batch);
      await writer.publish(table, staged.stagedSnapshotId);
      return { ms: performance.now() - started, headersMs: staged.timings?.headersMs ?? 0 };
    };
    await write(); // creates the table
    const results = [];
    for (let run = 0; run < runs; run++) results.push(await write());
    const total = median(results.map((result) => result.ms));
    const check = median(results.map((result) => result.headersMs));
    console.log(
      `${each.name.padEnd(22)} write ${total.toFixed(0).padStart(6)} ms   header check ${check.toFixed(0).padStart(5)} ms`,
    );
  }
} finally {
  for (let index = 0; index < cases.length; index++) {
    await spark.sqlCommand(`DROP TABLE IF EXISTS ${namespace}.t${index} PURGE`).catch(() => undefined);
  }
  await spark.close();
  await rm(dir, { recursive: true, force: true });
}
