import { listFiles, resetFilesForRetry, runReport, type FileRecord } from "@lakeferry/db";
import { ZSTD_CODEC_CLASS } from "@lakeferry/iceberg";
import type { SparkConnectClient } from "@lakeferry/spark-connect";
import { mkdir, mkdtemp, readdir, rename, rm, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stageDeadlineMs } from "../src/batch-lifecycle.ts";
import { discoverFiles, enqueueFiles, parseIngestionSpec, waitForRun } from "../src/index.ts";
import { createWorld, jsonRows, rowsPerFile, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

/**
 * Writes rows `first`… (`id BIGINT, v STRING`) as ONE file at `path`, by Spark's own writer with `codec`:
 * the compressed files Spark and its Hadoop codecs produce, whatever codecs Node has.
 */
async function writeWithSpark(
  spark: SparkConnectClient,
  format: string,
  codec: string,
  path: string,
  first: number,
  count: number,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "lakeferry-compressed-"));
  await spark.sqlCommand(
    `INSERT OVERWRITE DIRECTORY 'file://${dir}/out' USING ${format} OPTIONS (compression '${codec}')
     SELECT /*+ REPARTITION(1) */ id, concat('row-', id) AS v FROM range(${first}, ${first + count})`,
  );
  const parts = (await readdir(`${dir}/out`)).filter((name) => name.startsWith("part-"));
  expect(parts).toHaveLength(1);
  await mkdir(dirname(path), { recursive: true });
  await rename(`${dir}/out/${parts[0]}`, path);
  await rm(dir, { recursive: true, force: true });
}

/**
 * Dates every file under `dir` a minute back, so that no listing takes them for files still being written
 * (a listing may leave out files modified moments ago).
 */
async function backdate(dir: string): Promise<void> {
  const then = new Date(Date.now() - 60_000);
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) await utimes(join(entry.parentPath, entry.name), then, then);
  }
}

function batchesOf(files: FileRecord[]): Map<string | null, string[]> {
  const batches = new Map<string | null, string[]>();
  for (const file of files) batches.set(file.batchId, [...(batches.get(file.batchId) ?? []), file.filePath]);
  return batches;
}

describe("size limits", () => {
  it("reads maxFileBytes and largeFileBytes as bytes or with a unit, and refuses anything else", () => {
    const base = { name: "n", source: "file:///tmp/x/", format: "json", table: "lake.a.b" };
    expect(parseIngestionSpec({ ...base, maxFileBytes: "1.5GiB", largeFileBytes: 1000 })).toMatchObject({
      maxFileBytes: 1.5 * 2 ** 30,
      largeFileBytes: 1000,
    });
    expect(parseIngestionSpec({ ...base, largeFileBytes: "256 MB" })).toMatchObject({
      maxFileBytes: null,
      largeFileBytes: 256_000_000,
    });
    expect(() => parseIngestionSpec({ ...base, maxFileBytes: "lots" })).toThrow(
      'maxFileBytes: "lots" is not a size: write bytes (268435456) or a number with a unit (256MiB, 1GB)',
    );
    expect(() => parseIngestionSpec({ ...base, largeFileBytes: 0 })).toThrow(
      /largeFileBytes: 0 is not a size/,
    );
  });

  it("gives a stage the client's 10 minutes, more in proportion to the bytes beyond 600 MiB (gzip and bzip2 count ×20)", () => {
    const file = (name: string, bytes: number): { uri: string; bytes: number } => ({
      uri: `file:///d/${name}`,
      bytes,
    });
    expect(stageDeadlineMs([file("a.json", 1_000), file("b.json", 200 * 2 ** 20)])).toBe(600_000);
    expect(stageDeadlineMs([file("a.json", 2 ** 30)])).toBe(1_024_000);
    expect(stageDeadlineMs([file("a.json", 4 * 2 ** 30)])).toBe(4_096_000);
    // gzip and bzip2 count 20 bytes a byte: 80 MiB of gzip as 1.6 GiB of JSON.
    expect(stageDeadlineMs([file("a.json.gz", 80 * 2 ** 20)])).toBe(1_600_000);
  });

  it("skips a file above maxFileBytes unread, writes one above largeFileBytes alone, the rest together", async () => {
    const w = (world = await createWorld());
    const small = [];
    for (let i = 0; i < 3; i++) small.push(await w.file(`small-${i}.json`, jsonRows(i * 10, 3)));
    const large = await w.file("large.json", jsonRows(1_000, 200)); // about 5 KB
    const huge = await w.file("huge.json", jsonRows(10_000, 2_000)); // about 55 KB
    await backdate(w.dir);
    const ingestion = await w.ingestion({ maxFileBytes: "20KB", largeFileBytes: "2KB" });
    await w.worker({ batch: { maxWaitMs: 1_000 } });

    const run = await discoverFiles(w, ingestion);
    expect(await waitForRun(w, run.run.id, { timeoutMs: 60_000 })).toMatchObject({ total: 5, settled: 5 });
    const files = await listFiles(w.db, ingestion.id);
    const skipped = files.find((file) => file.filePath === huge);
    expect(skipped).toMatchObject({ status: "SKIPPED", errorType: "FILE_TOO_LARGE", retryCount: 0 });
    expect(skipped?.errorMessage).toMatch(
      /more than the ingestion's maxFileBytes \(20000\); to ingest it, raise maxFileBytes .* lakeferry retry orders --file file:\/\//,
    );
    expect(files.filter((file) => file.status === "SUCCESS")).toHaveLength(4);
    const largeBatch = files.find((file) => file.filePath === large)?.batchId ?? null;
    expect(batchesOf(files).get(largeBatch)).toEqual([large]);
    expect(await rowsPerFile(w.spark, w.table())).toEqual({
      [small[0]!]: 3,
      [small[1]!]: 3,
      [small[2]!]: 3,
      [large]: 200,
    });

    const report = await runReport(w.db, run.run.id);
    expect(report?.errorTypes).toEqual([
      expect.objectContaining({ errorType: "FILE_TOO_LARGE", kind: "file_too_large", files: 1 }),
    ]);
    expect(report?.errorTypes[0]?.action).toMatch(/raise `maxFileBytes`.*lakeferry retry orders --file PATH/);

    // What the action says: raise the limit, retry the file; it lands (written alone: above largeFileBytes).
    const raised = await w.ingestion({ maxFileBytes: "1MB", largeFileBytes: "2KB" });
    const refs = await resetFilesForRetry(w.db, raised.id, { failedOnly: false, path: huge });
    expect(refs).toHaveLength(1);
    await enqueueFiles(w.queue, raised, refs);
    await expect
      .poll(async () => (await rowsPerFile(w.spark, w.table()))[huge], { timeout: 60_000, interval: 500 })
      .toBe(2_000);
  });
});

describe("compressed files", () => {
  it("ingests gzip and bzip2 JSON and CSV, zstd JSON written by our codec, and snappy, zstd and gzip Parquet and ORC", async () => {
    const w = (world = await createWorld());
    const cases: [format: string, codec: string, name: string][] = [
      ["json", "gzip", "a.json.gz"],
      ["json", "bzip2", "b.json.bz2"],
      // Written by our codec (zstd-files.test.ts reads the zstd command's files).
      ["json", ZSTD_CODEC_CLASS, "c.json.zst"],
      ["csv", "gzip", "a.csv.gz"],
      ["csv", "bzip2", "b.csv.bz2"],
      ["parquet", "snappy", "a.snappy.parquet"],
      ["parquet", "zstd", "b.zstd.parquet"],
      ["parquet", "gzip", "c.gz.parquet"],
      ["orc", "snappy", "a.snappy.orc"],
      ["orc", "zstd", "b.zstd.orc"],
      ["orc", "zlib", "c.zlib.orc"],
    ];
    const expected: Record<string, Record<string, number>> = {};
    for (const [index, [format, codec, name]] of cases.entries()) {
      const path = join(w.dir, format, name);
      await writeWithSpark(w.spark, format, codec, path, index * 1_000, 100 + index);
      expected[format] = { ...expected[format], [`file://${path}`]: 100 + index };
    }
    await backdate(w.dir);

    const runs = [];
    for (const format of ["json", "csv", "parquet", "orc"]) {
      const ingestion = await w.ingestion({
        name: format,
        format,
        pattern: `${format}/**`,
        table: w.table(format),
      });
      runs.push({ format, ingestion, run: await discoverFiles(w, ingestion) });
    }
    await w.worker();
    for (const { format, run } of runs) {
      const settled = await waitForRun(w, run.run.id, { timeoutMs: 90_000 });
      expect(settled).toMatchObject({ failed: 0 });
      expect(await rowsPerFile(w.spark, w.table(format))).toEqual(expected[format]);
    }
  });
});
