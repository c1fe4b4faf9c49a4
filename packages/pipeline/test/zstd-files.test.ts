/**
 * `.zst` JSON, CSV and text: read through lakeferry's zstd codec where the Spark server lists it (as
 * scripts/services.sh starts every supported Spark), refused at claim where it does not.
 */
import { listFiles } from "@lakeferry/db";
import { COMPRESSION_CODECS_CONFIG, SparkSessionCodecs } from "@lakeferry/iceberg";
import { IngestWorker } from "@lakeferry/queue";
import { SparkConnectClient } from "@lakeferry/spark-connect";
import { execFileSync } from "node:child_process";
import { mkdir, utimes, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { discoverFiles, FileIngestor, waitForRun } from "../src/index.ts";
import { createWorld, env, jsonRows, rowsPerFile, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

/**
 * Writes `frames` at `dir/relative` as one `.zst` file of a zstd frame each (concatenated, as
 * `cat a.zst b.zst` makes), compressed by the zstd command rather than by anything of Spark's or ours, and
 * dated a minute back so that a listing takes it as complete. Returns its URI.
 */
async function zstdFile(dir: string, relative: string, ...frames: string[]): Promise<string> {
  const path = join(dir, relative);
  await mkdir(dirname(path), { recursive: true });
  const compressed = frames.map((frame) => execFileSync("zstd", ["-q", "-c"], { input: frame }));
  await writeFile(path, Buffer.concat(compressed));
  const then = new Date(Date.now() - 60_000);
  await utimes(path, then, then);
  return `file://${path}`;
}

function csvRows(first: number, count: number): string {
  return Array.from({ length: count }, (_, i) => `${first + i},row-${first + i}\n`).join("");
}

describe("zstd files", () => {
  it("ingests .zst JSON lines (two frames) and CSV made by the zstd command, with every row", async () => {
    const w = (world = await createWorld());
    expect(await new SparkSessionCodecs(w.spark).readsZstd()).toBe(true);
    // Two frames: a reader that stopped at the first frame's end would lose the last 40 rows.
    const json = await zstdFile(w.dir, "json/a.json.zst", jsonRows(0, 60), jsonRows(60, 40));
    const csv = await zstdFile(w.dir, "csv/a.csv.zst", csvRows(1_000, 70));
    const jsonIngestion = await w.ingestion({ name: "json", pattern: "json/**" });
    const csvIngestion = await w.ingestion({
      name: "csv",
      format: "csv",
      pattern: "csv/**",
      table: w.table("csv"),
    });
    await w.worker();
    for (const ingestion of [jsonIngestion, csvIngestion]) {
      const run = await discoverFiles(w, ingestion);
      expect(await waitForRun(w, run.run.id, { timeoutMs: 60_000 })).toMatchObject({ total: 1, failed: 0 });
    }
    expect(await rowsPerFile(w.spark, w.table())).toEqual({ [json]: 100 });
    expect(await rowsPerFile(w.spark, w.table("csv"))).toEqual({ [csv]: 70 });
    const [sums] = await w.spark.sql(
      `SELECT (SELECT sum(id) FROM ${w.table()}) AS json, (SELECT sum(id) FROM ${w.table("csv")}) AS csv`,
    );
    expect([Number(sums?.json), Number(sums?.csv)]).toEqual([(99 * 100) / 2, 70 * 1_000 + (69 * 70) / 2]);
  });

  it("refuses .zst JSON at claim when the session's Spark does not list lakeferry's codec", async () => {
    const w = (world = await createWorld());
    // A session told Hadoop's own codecs stands for a server without ours.
    const bare = new SparkConnectClient({ remote: env.sparkRemote });
    await bare.setConfig({
      [COMPRESSION_CODECS_CONFIG]:
        "org.apache.hadoop.io.compress.DefaultCodec,org.apache.hadoop.io.compress.GzipCodec," +
        "org.apache.hadoop.io.compress.BZip2Codec,org.apache.hadoop.io.compress.ZStandardCodec",
    });
    const zst = await zstdFile(w.dir, "c.json.zst", jsonRows(0, 5));
    const plain = await w.file("a.json", jsonRows(100, 3));
    const ingestion = await w.ingestion({ pattern: "**/*.json*" });

    const ingestor = new FileIngestor({
      db: w.db,
      writer: w.writer,
      workerId: "no-zstd",
      logger: w.logger,
      codecs: new SparkSessionCodecs(bare),
    });
    const worker = new IngestWorker({
      redisUrl: env.redisUrl,
      prefix: w.prefix,
      concurrency: 5,
      process: (job) => ingestor.process(job),
    });
    await worker.start();
    try {
      const run = await discoverFiles(w, ingestion);
      expect(await waitForRun(w, run.run.id, { timeoutMs: 60_000 })).toMatchObject({ total: 2, failed: 1 });
      const refused = (await listFiles(w.db, ingestion.id)).find((file) => file.filePath === zst);
      expect(refused).toMatchObject({ status: "FAILED", errorType: "UNSUPPORTED_COMPRESSION", attempts: 1 });
      expect(refused?.errorMessage).toMatch(
        /cannot read zstd-compressed json \(\.zst\).*does not list dev\.lakeferry\.hadoop\.ZstdJniCodec\. Install lakeferry's zstd codec jar on the Spark server \(README, "Compressed files"\), or recompress the file as \.gz or \.bz2/,
      );
      // Its neighbour is written (by a session that does read zstd: the refusal came from the check alone).
      expect(await rowsPerFile(w.spark, w.table())).toEqual({ [plain]: 3 });
    } finally {
      await worker.close({ timeoutMs: 5_000 });
      await ingestor.close();
      await bare.close();
    }
  });
});
