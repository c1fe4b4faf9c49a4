/**
 * What a batch write costs on this Spark: medians of `SELECT 1` (one round trip, the floor), a 1-file batch
 * and a 100-file batch through IcebergWriter.write (stage one snapshot in one job, find it and count its rows
 * per file, then publish it), each also as a ratio to `SELECT 1`; the two halves of the fenced commit of a
 * 100-file batch on their own (stage; publish, the step added by the fence); and the 100-file batch again
 * with isolateSourceFiles off (its own session and table), to show what one task per file costs. Small JSON
 * files in a temp dir.
 *
 *   eval "$(bash scripts/services.sh env)"
 *   npx tsx bench/spark-write.ts [runs=5]
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IcebergWriter } from "@lakeferry/iceberg";
import { SparkConnectClient } from "@lakeferry/spark-connect";

const runs = Number(process.argv[2] ?? 5);
const remote = process.env.SPARK_REMOTE;
if (!remote) throw new Error('SPARK_REMOTE is not set; run: eval "$(bash scripts/services.sh env)"');

const spark = new SparkConnectClient({ remote });
const mixedSpark = new SparkConnectClient({ remote });
const writer = new IcebergWriter({ spark });
const mixedWriter = new IcebergWriter({ spark: mixedSpark, isolateSourceFiles: false });
const dir = await mkdtemp(join(tmpdir(), "lakeferry-bench-"));
const namespace = `lake.bench_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
const table = `${namespace}.events`;
const mixedTable = `${namespace}.mixed`;

let fileCount = 0;
/** `n` new JSON-lines files of 10 rows each. */
async function newFiles(n: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const path = join(dir, `f-${fileCount++}.json`);
      const rows = Array.from({ length: 10 }, (_, i) => JSON.stringify({ id: fileCount * 100 + i, v: "x" }));
      await writeFile(path, rows.join("\n") + "\n");
      return `file://${path}`;
    }),
  );
}

async function writeBatch(files: string[], into = table, using = writer): Promise<void> {
  await using.write({
    batchId: randomUUID(),
    table: into,
    format: "json",
    schema: "id BIGINT, v STRING",
    files,
  });
}
const writeMixed = (files: string[]): Promise<void> => writeBatch(files, mixedTable, mixedWriter);

/** Median wall time in ms of `runs` calls of `run`, each given what `prepare` made (untimed). */
async function median<T>(prepare: () => Promise<T>, run: (input: T) => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const input = await prepare();
    const started = performance.now();
    await run(input);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? Number.NaN;
}

try {
  // Warm up: the JVM, the session, and the table (created by the first batch).
  await spark.sql("SELECT 1");
  await writeBatch(await newFiles(1));
  await writeBatch(await newFiles(100));
  await writeMixed(await newFiles(100));

  const none = async (): Promise<void> => {};
  const select1 = await median(none, () => spark.sql("SELECT 1"));
  const one = await median(() => newFiles(1), writeBatch);
  const hundred = await median(() => newFiles(100), writeBatch);
  const hundredMixed = await median(() => newFiles(100), writeMixed);
  const stageOf = async (files: string[]) =>
    writer.stage({ batchId: randomUUID(), table, format: "json", schema: "id BIGINT, v STRING", files });
  const stage = await median(() => newFiles(100), stageOf);
  const publish = await median(
    async () => (await stageOf(await newFiles(100))).stagedSnapshotId,
    (staged) => writer.publish(table, staged),
  );

  const line = (name: string, ms: number): string =>
    `${name.padEnd(22)} ${ms.toFixed(1).padStart(9)} ms  ${(ms / select1).toFixed(1).padStart(7)}x SELECT 1`;
  console.log(`median of ${runs} runs, Spark ${await spark.version()}`);
  console.log(line("SELECT 1", select1));
  console.log(line("write 1-file batch", one));
  console.log(line("write 100-file batch", hundred));
  console.log(line("  same, not isolated", hundredMixed));
  console.log(line("  stage only", stage));
  console.log(line("  publish only (fence)", publish));
  console.log(`${"per file in 100".padEnd(22)} ${(hundred / 100).toFixed(1).padStart(9)} ms`);
} finally {
  for (const name of [table, mixedTable]) {
    await spark.sqlCommand(`DROP TABLE IF EXISTS ${name} PURGE`).catch(() => undefined);
  }
  await Promise.all([spark.close(), mixedSpark.close()]);
  await rm(dir, { recursive: true, force: true });
}
