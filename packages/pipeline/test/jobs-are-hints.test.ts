/**
 * Invariant 4: a job is a hint. It names a file version; the file's ingestion comes from Postgres. A job
 * that says the file belongs to another ingestion, or names a file that does not exist, fails with a clear
 * error and writes nothing (the jobs are added the way any producer could, payload and all).
 */
import { fileHistory, listFiles } from "@lakeferry/db";
import { IngestWorker } from "@lakeferry/queue";
import { afterEach, describe, expect, it } from "vitest";
import { discoverFiles, FileIngestor } from "../src/index.ts";
import { createWorld, env, eventually, jsonRows, rowsPerFile, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;
const closers: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  await world?.close();
  world = undefined;
});

describe("Jobs are hints", () => {
  it("a job naming another ingestion's file, or no file, fails JOB_MISMATCH and writes nothing", async () => {
    const w = (world = await createWorld());
    await w.file("a/one.json", jsonRows(0, 2));
    const owner = await w.ingestion({ name: "owner", source: `file://${w.dir}/a/` });
    const other = await w.ingestion({ name: "other", source: `file://${w.dir}/b/`, table: w.table("other") });
    await discoverFiles(w, owner);
    await w.queue.drainAll();
    const [file] = await listFiles(w.db, owner.id);
    if (!file) throw new Error("file not registered");

    const failures: string[] = [];
    const ingestor = new FileIngestor({ db: w.db, writer: w.writer, workerId: "hints", logger: w.logger });
    const worker = new IngestWorker({
      redisUrl: env.redisUrl,
      prefix: w.prefix,
      concurrency: 5,
      process: async (job) => {
        try {
          await ingestor.process(job);
        } catch (error) {
          failures.push(`${job.data.fileId}:${(error as { code?: string }).code ?? String(error)}`);
          throw error;
        }
      },
    });
    await worker.start();
    closers.push(async () => {
      await worker.close({ timeoutMs: 5_000 });
      await ingestor.close();
    });

    // The same job id a lakeferry producer would use, but a payload that disagrees with Postgres.
    await w.queue.enqueue([
      {
        data: { fileId: file.id, version: 1, ingestionId: other.id },
        retry: { attempts: 3, backoffMs: 100 },
      },
      {
        data: { fileId: 999_999, version: 1, ingestionId: owner.id },
        retry: { attempts: 3, backoffMs: 100 },
      },
    ]);
    await eventually("both jobs failed", async () => (failures.length === 2 ? true : undefined));
    expect(failures.sort()).toEqual([`${file.id}:JOB_MISMATCH`, "999999:JOB_MISMATCH"].sort());
    expect((await w.queue.counts()).failed).toBe(2); // not retried: permanent

    // Nothing was claimed or written: the file waits for its own ingestion's job.
    const [after] = await listFiles(w.db, owner.id);
    expect(after).toMatchObject({ status: "PENDING", attempts: 0 });
    expect((await fileHistory(w.db, file.id)).attempts).toEqual([]);
    await expect(rowsPerFile(w.spark, w.table("other"))).rejects.toThrow();
  });
});
