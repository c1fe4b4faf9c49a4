import { LakeferryError } from "@lakeferry/core";
import type { WriteBatch, WriteResult } from "@lakeferry/iceberg";
import { describe, expect, it } from "vitest";
import {
  BatchInterruptedError,
  GroupCommitBatcher,
  type BatchFile,
  type BatchSettlement,
  type BatchTarget,
  type BatchWriter,
} from "../src/index.ts";

/**
 * A writer that records every batch: files whose name contains "bad" fail the batch permanently (like a
 * malformed file under FAILFAST), the error naming the file when `nameTheFile`; `transient` fails every
 * write retryably (like Spark being down). Each write takes `delayMs`.
 */
class RecordingWriter implements BatchWriter {
  readonly batches: WriteBatch[] = [];
  running = 0;
  maxRunning = 0;
  transient = false;
  nameTheFile = false;
  delayMs = 5;

  async write(batch: WriteBatch, options?: { signal?: AbortSignal }): Promise<WriteResult> {
    this.batches.push(batch);
    this.running += 1;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, this.delayMs);
        options?.signal?.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(new LakeferryError("SPARK_ABORTED", "aborted", { retryable: true }));
        });
      });
      if (this.transient) throw new LakeferryError("SPARK_UNAVAILABLE", "spark is down", { retryable: true });
      const bad = batch.files.filter((file) => file.includes("bad"));
      if (bad.length > 0) {
        const named = this.nameTheFile ? ` while reading ${bad[0]}` : "";
        throw new LakeferryError("SPARK_BAD_INPUT", `malformed record${named}`, { retryable: false });
      }
      return {
        snapshotId: String(this.batches.length),
        committedAt: new Date(),
        records: new Map(batch.files.map((file) => [file, file.length])),
        alreadyCommitted: false,
      };
    } finally {
      this.running -= 1;
    }
  }

  async findCommittedBatch(): Promise<undefined> {
    return undefined;
  }
}

const target = (overrides: Partial<BatchTarget> = {}): BatchTarget => ({
  ingestionId: 1,
  table: "lake.ns.t",
  format: "json",
  options: {},
  mode: "append",
  ...overrides,
});

const file = (name: string, bytes = 10, to = target()): BatchFile => ({
  uri: `file:///in/${name}`,
  bytes,
  target: to,
});

const names = (batch: WriteBatch): string[] => batch.files.map((uri) => uri.replace("file:///in/", ""));

describe("GroupCommitBatcher", () => {
  it("writes a batch as soon as it holds maxFiles files, without waiting", async () => {
    const writer = new RecordingWriter();
    const batcher = new GroupCommitBatcher({ writer, limits: { maxFiles: 3, maxWaitMs: 60_000 } });
    const started = Date.now();
    const commits = await Promise.all(["a", "b", "c"].map((name) => batcher.add(file(name))));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(writer.batches.map(names)).toEqual([["a", "b", "c"]]);
    expect(new Set(commits.map((commit) => commit.batchId)).size).toBe(1);
    expect(commits[0]?.records).toBe("file:///in/a".length);
    await batcher.close();
  });

  it("writes a batch once it holds maxBytes bytes", async () => {
    const writer = new RecordingWriter();
    const batcher = new GroupCommitBatcher({
      writer,
      limits: { maxFiles: 100, maxBytes: 100, maxWaitMs: 60_000 },
    });
    await Promise.all([batcher.add(file("a", 60)), batcher.add(file("b", 60))]);
    expect(writer.batches.map(names)).toEqual([["a", "b"]]);
    await batcher.close();
  });

  it("writes a lone file after maxWaitMs, and files that come later in a batch of their own", async () => {
    const writer = new RecordingWriter();
    const batcher = new GroupCommitBatcher({ writer, limits: { maxFiles: 100, maxWaitMs: 150 } });
    const started = Date.now();
    await batcher.add(file("a"));
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(140);
    await batcher.add(file("b"));
    expect(writer.batches.map(names)).toEqual([["a"], ["b"]]);
    await batcher.close();
  });

  it("never mixes files of different targets in one batch", async () => {
    const writer = new RecordingWriter();
    const batcher = new GroupCommitBatcher({ writer, limits: { maxWaitMs: 50 } });
    await Promise.all([
      batcher.add(file("a")),
      batcher.add(file("b", 10, target({ table: "lake.ns.other" }))),
      batcher.add(file("c", 10, target({ mode: "replace" }))),
      batcher.add(file("d", 10, target({ options: { multiLine: "true" } }))),
      batcher.add(file("e")),
    ]);
    const written = writer.batches
      .map(names)
      .sort((x, y) => x.length - y.length || (x[0] ?? "").localeCompare(y[0] ?? ""));
    expect(written).toEqual([["b"], ["c"], ["d"], ["a", "e"]]);
    expect(writer.batches.find((batch) => batch.files.length === 1 && names(batch)[0] === "c")?.mode).toBe(
      "replace",
    );
    await batcher.close();
  });

  it("splits a batch that fails permanently until each bad file fails alone; its neighbours land", async () => {
    const writer = new RecordingWriter();
    const settlements: { files: string[]; settlement: BatchSettlement }[] = [];
    const batcher = new GroupCommitBatcher({
      writer,
      limits: { maxFiles: 8, maxWaitMs: 60_000 },
      settle: async (attempt, settlement) => {
        settlements.push({ files: attempt.files.map((f) => f.uri), settlement });
      },
    });
    const all = ["a", "bad1", "c", "d", "e", "f", "bad2", "h"];
    const results = await Promise.allSettled(all.map((name) => batcher.add(file(name))));
    const fate = Object.fromEntries(all.map((name, i) => [name, results[i]?.status]));
    expect(fate).toEqual({
      a: "fulfilled",
      bad1: "rejected",
      c: "fulfilled",
      d: "fulfilled",
      e: "fulfilled",
      f: "fulfilled",
      bad2: "rejected",
      h: "fulfilled",
    });
    // Each bad file was blamed only once it was written alone.
    for (const name of ["bad1", "bad2"]) {
      const blamed = settlements.filter(
        (s) => s.settlement.kind === "failed" && !s.settlement.split && s.files.some((f) => f.endsWith(name)),
      );
      expect(blamed.map((s) => s.files.length)).toEqual([1]);
    }
    // Every good file was committed exactly once; batch ids are fresh per attempt.
    const committed = settlements.filter((s) => s.settlement.kind === "committed").flatMap((s) => s.files);
    expect(committed.sort()).toEqual(
      all
        .filter((n) => !n.startsWith("bad"))
        .map((n) => `file:///in/${n}`)
        .sort(),
    );
    const rejected = results[1] as PromiseRejectedResult;
    expect((rejected.reason as LakeferryError).retryable).toBe(false);
    await batcher.close();
  });

  it("takes out the file a permanent error names instead of halving", async () => {
    const writer = new RecordingWriter();
    writer.nameTheFile = true;
    const batcher = new GroupCommitBatcher({ writer, limits: { maxFiles: 6, maxWaitMs: 60_000 } });
    const all = ["a", "b", "bad", "d", "e", "f"];
    await Promise.allSettled(all.map((name) => batcher.add(file(name))));
    // The full batch, then the named file alone and the five others together.
    expect(writer.batches.map((batch) => names(batch).length).sort()).toEqual([1, 5, 6]);
    expect(writer.batches.some((batch) => names(batch).join() === "bad")).toBe(true);
    await batcher.close();
  });

  it("fails every file of a batch with a retryable error without splitting", async () => {
    const writer = new RecordingWriter();
    writer.transient = true;
    const batcher = new GroupCommitBatcher({ writer, limits: { maxFiles: 4, maxWaitMs: 60_000 } });
    const results = await Promise.allSettled(["a", "b", "c", "d"].map((name) => batcher.add(file(name))));
    expect(results.every((r) => r.status === "rejected" && (r.reason as LakeferryError).retryable)).toBe(
      true,
    );
    expect(writer.batches).toHaveLength(1);
    await batcher.close();
  });

  it("runs at most maxConcurrentWrites writes at once; the rest queue", async () => {
    const writer = new RecordingWriter();
    writer.delayMs = 40;
    const batcher = new GroupCommitBatcher({ writer, limits: { maxFiles: 1, maxConcurrentWrites: 2 } });
    await Promise.all(Array.from({ length: 6 }, (_, i) => batcher.add(file(`f${i}`))));
    expect(writer.batches).toHaveLength(6);
    expect(writer.maxRunning).toBe(2);
    await batcher.close();
  });

  it("lets a file leave while its batch gathers, and interrupts a write only when all its files gave up", async () => {
    const writer = new RecordingWriter();
    writer.delayMs = 10_000;
    const batcher = new GroupCommitBatcher({ writer, limits: { maxFiles: 2, maxWaitMs: 60_000 } });
    const leaving = new AbortController();
    const left = batcher.add({ ...file("a"), signal: leaving.signal });
    leaving.abort(new Error("job interrupted"));
    await expect(left).rejects.toThrow("job interrupted");
    expect(batcher.waiting).toBe(0);

    const one = new AbortController();
    const two = new AbortController();
    const first = batcher.add({ ...file("b"), signal: one.signal });
    const second = batcher.add({ ...file("c"), signal: two.signal });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(batcher.writing).toBe(1);
    one.abort(new Error("stop"));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(batcher.writing).toBe(1); // one file still wants the write
    two.abort(new Error("stop"));
    await expect(first).rejects.toBeInstanceOf(BatchInterruptedError);
    await expect(second).rejects.toBeInstanceOf(BatchInterruptedError);
    await batcher.close();
  });

  it("close writes what is gathering at once and waits for it", async () => {
    const writer = new RecordingWriter();
    const batcher = new GroupCommitBatcher({ writer, limits: { maxWaitMs: 60_000 } });
    const pending = batcher.add(file("a"));
    const started = Date.now();
    await batcher.close();
    await expect(pending).resolves.toMatchObject({ records: "file:///in/a".length });
    expect(Date.now() - started).toBeLessThan(5_000);
    await expect(batcher.add(file("b"))).rejects.toThrow(/closing/);
  });
});
