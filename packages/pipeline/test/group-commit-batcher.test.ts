import { LakeferryError } from "@lakeferry/core";
import { SparkConnectError } from "@lakeferry/spark-connect";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  BatcherClosedError,
  BatchFencedError,
  GroupCommitBatcher,
  type BatchAttempt,
  type BatchFile,
  type BatchTarget,
  type BatchVerdict,
  type FileCommit,
} from "../src/index.ts";

/** One call of the fake `write`, as the batcher made it. */
interface RecordedAttempt {
  batchId: string;
  target: BatchTarget;
  files: string[];
  signal: AbortSignal;
}

/** Decides how an attempt ends. */
type Rule = (attempt: BatchAttempt<BatchFile>, signal: AbortSignal) => BatchVerdict | Promise<BatchVerdict>;

/** A malformed file under FAILFAST: the error the lifecycle would report, not retryable. */
const badInput = (): LakeferryError =>
  new LakeferryError("SPARK_BAD_INPUT", "malformed record", { retryable: false });

/**
 * The batch lifecycle as the batcher sees it: a batch holding a file named `bad*` is split while it holds
 * several files and fails once the bad file is alone; any other batch commits, each file with as many
 * records as its name has characters.
 */
const lakehouse: Rule = (attempt) => {
  const bad = attempt.files.some((file) => nameOf(file.uri).startsWith("bad"));
  if (bad)
    return attempt.files.length > 1
      ? { kind: "split", error: badInput() }
      : { kind: "failed", error: badInput() };
  return committed(attempt);
};

const committed = (attempt: BatchAttempt<BatchFile>): BatchVerdict => ({
  kind: "committed",
  snapshotId: `snapshot-of-${attempt.batchId}`,
  records: new Map(attempt.files.map((file) => [file.uri, nameOf(file.uri).length])),
});

/** More attempts than any test needs. */
const MAX_ATTEMPTS = 50;

/**
 * A fake `write` that records every attempt and answers by a rule. While held, each write waits until
 * released, so a test decides when writes end.
 */
class FakeWrite {
  readonly attempts: RecordedAttempt[] = [];
  running = 0;
  maxRunning = 0;
  /** Writes that returned (or threw). */
  finished = 0;
  readonly #rule: Rule;
  #holding = false;
  readonly #gates: (() => void)[] = [];

  constructor(rule: Rule = lakehouse) {
    this.#rule = rule;
  }

  readonly write = async (attempt: BatchAttempt<BatchFile>, signal: AbortSignal): Promise<BatchVerdict> => {
    // As the lifecycle does once the write may start (only when there is something to adopt with).
    if (attempt.grow) await attempt.grow();
    this.attempts.push({ ...attempt, files: attempt.files.map((file) => nameOf(file.uri)), signal });
    // A batcher that writes the same files again and again fails the test instead of hanging it.
    if (this.attempts.length > MAX_ATTEMPTS) return { kind: "failed", error: new Error("too many attempts") };
    this.running += 1;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      if (this.#holding) await new Promise<void>((resolve) => this.#gates.push(resolve));
      return await this.#rule(attempt, signal);
    } finally {
      this.running -= 1;
      this.finished += 1;
    }
  };

  /** Writes started from now on wait for `release`. */
  hold(): void {
    this.#holding = true;
  }

  /** Lets the oldest waiting write go on. */
  releaseOne(): void {
    this.#gates.shift()?.();
  }

  /** Lets every waiting write go on, and stops holding. */
  releaseAll(): void {
    this.#holding = false;
    for (const open of this.#gates.splice(0)) open();
  }
}

const target = (overrides: Partial<BatchTarget> = {}): BatchTarget => ({
  ingestionId: 1,
  table: "lake.ns.t",
  format: "json",
  options: {},
  mode: "append",
  isolateFiles: false,
  schemaEvolution: "none",
  ...overrides,
});

const file = (name: string, bytes = 10, to = target(), signal?: AbortSignal): BatchFile => ({
  uri: `file:///in/${name}`,
  bytes,
  target: to,
  ...(signal ? { signal } : {}),
});

function nameOf(uri: string): string {
  return uri.replace("file:///in/", "");
}

/** Attempts as sorted lists of names, in a stable order, to compare regardless of scheduling. */
const fileSets = (attempts: RecordedAttempt[]): string[] =>
  attempts.map((attempt) => [...attempt.files].sort().join(",")).sort();

/** Tracks whether a promise settled, without leaving a rejection unhandled. */
function watch<T>(promise: Promise<T>): { promise: Promise<T>; settled: () => boolean } {
  let settled = false;
  promise.then(
    () => (settled = true),
    () => (settled = true),
  );
  return { promise, settled: () => settled };
}

describe("GroupCommitBatcher", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("writes a batch as soon as it holds maxFiles files and gives each file its batch, snapshot and records", async () => {
    const fake = new FakeWrite();
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxFiles: 3, maxWaitMs: 60_000 } });
    const pending = ["a", "bb", "ccc"].map((name) => batcher.add(file(name)));
    expect(fake.attempts.map((attempt) => attempt.files)).toEqual([["a", "bb", "ccc"]]);
    const commits = await Promise.all(pending);
    const batchId = fake.attempts[0]?.batchId;
    expect(commits).toEqual([
      { batchId, snapshotId: `snapshot-of-${batchId}`, records: 1 },
      { batchId, snapshotId: `snapshot-of-${batchId}`, records: 2 },
      { batchId, snapshotId: `snapshot-of-${batchId}`, records: 3 },
    ]);
    await batcher.close();
  });

  it("resolves a file the committed verdict has no records for with 0 records and passes a null snapshot on", async () => {
    const fake = new FakeWrite(() => ({ kind: "committed", snapshotId: null, records: new Map() }));
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxFiles: 1 } });
    await expect(batcher.add(file("a"))).resolves.toMatchObject({ snapshotId: null, records: 0 });
    await batcher.close();
  });

  it("writes a batch once it holds maxBytes bytes", async () => {
    const fake = new FakeWrite();
    const batcher = new GroupCommitBatcher({
      write: fake.write,
      limits: { maxFiles: 100, maxBytes: 100, maxWaitMs: 60_000 },
    });
    const first = batcher.add(file("a", 60));
    expect(fake.attempts).toHaveLength(0);
    const second = batcher.add(file("b", 60));
    expect(fake.attempts.map((attempt) => attempt.files)).toEqual([["a", "b"]]);
    await Promise.all([first, second]);
    await batcher.close();
  });

  it("writes a lone file after maxWaitMs, and a file that comes later in a batch of its own", async () => {
    vi.useFakeTimers();
    const fake = new FakeWrite();
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxFiles: 100, maxWaitMs: 150 } });
    const first = batcher.add(file("a"));
    vi.advanceTimersByTime(149);
    expect(fake.attempts).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(fake.attempts).toHaveLength(1);
    await first;
    const second = batcher.add(file("b"));
    vi.advanceTimersByTime(150);
    await second;
    expect(fake.attempts.map((attempt) => attempt.files)).toEqual([["a"], ["b"]]);
    await batcher.close();
  });

  it("stops waiting for company once every job slot (capacity) holds a file, and waits again after", async () => {
    const fake = new FakeWrite();
    fake.hold();
    const batcher = new GroupCommitBatcher({
      write: fake.write,
      limits: { maxFiles: 100, maxWaitMs: 60_000 },
      capacity: 3,
    });
    const first = [batcher.add(file("a")), batcher.add(file("b"))];
    expect(fake.attempts).toHaveLength(0);
    const third = batcher.add(file("c"));
    // No more files can come: the gathering batch goes at once.
    expect(fake.attempts.map((attempt) => attempt.files)).toEqual([["a", "b", "c"]]);
    // Added beyond the slots (a retried job): it waits for the table, not for the timer.
    const later = batcher.add(file("d"));
    expect(fake.attempts).toHaveLength(1);
    fake.releaseAll();
    await Promise.all([...first, third]);
    await expect(later).resolves.toMatchObject({ records: 1 });
    expect(fake.attempts.map((attempt) => attempt.files)).toEqual([["a", "b", "c"], ["d"]]);
    // Slots freed: a lone file waits maxWaitMs again.
    vi.useFakeTimers();
    const lone = batcher.add(file("e"));
    vi.advanceTimersByTime(59_999);
    expect(fake.attempts).toHaveLength(2);
    vi.advanceTimersByTime(1);
    await lone;
    expect(fake.attempts).toHaveLength(3);
    await batcher.close();
  });

  it("a batch takes on the files `adopt` gives it, and they share its fate: committed, or split with it", async () => {
    const fake = new FakeWrite();
    const waiting = ["w1", "bad-w2", "w3", "w4"];
    const rooms: { files: number; bytes: number }[] = [];
    const fates = new Map<string, Promise<unknown>>();
    const batcher = new GroupCommitBatcher({
      write: fake.write,
      limits: { maxFiles: 4, maxBytes: 1_000, maxWaitMs: 60_000 },
      adopt: async (_attempt, room) => {
        rooms.push(room);
        return waiting.splice(0, room.files).map((name) => ({
          file: file(name),
          follow: (commit: Promise<FileCommit>) =>
            void fates.set(
              name,
              commit.then(
                (landed) => landed.records,
                (error: unknown) => (error as LakeferryError).code,
              ),
            ),
        }));
      },
    });
    const own = batcher.add(file("a", 100));
    batcher.flush();
    await own;
    expect(
      await Promise.all(
        ["w1", "bad-w2", "w3"].map((name) => fates.get(name) ?? Promise.resolve("not adopted")),
      ),
    ).toEqual([2, "SPARK_BAD_INPUT", 2]);
    // Room left by the one file; the adopted files are written in the same attempt.
    expect(rooms[0]).toEqual({ files: 3, bytes: 900 });
    expect(fake.attempts[0]?.files).toEqual(["a", "w1", "bad-w2", "w3"]);
    // The bad adopted file split the batch; the parts took on nothing more, so it ended alone.
    expect(rooms).toHaveLength(1);
    expect(fake.attempts.filter((attempt) => attempt.files.includes("bad-w2")).at(-1)?.files).toEqual([
      "bad-w2",
    ]);
    // A later batch takes on what is still waiting.
    const later = batcher.add(file("b"));
    batcher.flush();
    await later;
    await batcher.close();
    expect(fake.attempts.at(-1)?.files).toEqual(["b", "w4"]);
  });

  it("interrupts a grown write only when its own files and the files it took on all gave up", async () => {
    const fake = new FakeWrite();
    fake.hold();
    const own = new AbortController();
    const shutdown = new AbortController();
    const batcher = new GroupCommitBatcher({
      write: fake.write,
      limits: { maxWaitMs: 60_000 },
      adopt: async () => [{ file: file("taken-on", 10, target(), shutdown.signal), follow: () => {} }],
      capacity: 10,
    });
    const mine = batcher.add(file("mine", 10, target(), own.signal));
    batcher.flush();
    await vi.waitFor(() => expect(fake.attempts).toHaveLength(1));
    expect(fake.attempts[0]?.files).toEqual(["mine", "taken-on"]);
    own.abort(new Error("job lock lost"));
    expect(fake.attempts[0]?.signal.aborted).toBe(false);
    shutdown.abort(new Error("closing"));
    expect(fake.attempts[0]?.signal.aborted).toBe(true);
    fake.releaseAll();
    await mine;
    await batcher.close();
  });

  it("never mixes files of different targets in one batch", async () => {
    const fake = new FakeWrite();
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxWaitMs: 60_000 } });
    const pending = [
      batcher.add(file("a")),
      batcher.add(file("b", 10, target({ table: "lake.ns.other" }))),
      batcher.add(file("c", 10, target({ mode: "replace" }))),
      batcher.add(file("d", 10, target({ options: { multiLine: "true" } }))),
      batcher.add(file("e", 10, target({ isolateFiles: true }))),
      batcher.add(file("f", 10, target({ ingestionId: 2 }))),
      batcher.add(file("g")),
    ];
    batcher.flush();
    await Promise.all(pending);
    expect(fileSets(fake.attempts)).toEqual(["a,g", "b", "c", "d", "e", "f"]);
    const byFirstFile = new Map(fake.attempts.map((attempt) => [attempt.files[0], attempt.target]));
    expect(byFirstFile.get("c")?.mode).toBe("replace");
    expect(byFirstFile.get("e")?.isolateFiles).toBe(true);
    await batcher.close();
  });

  it("runs at most maxConcurrentWrites writes at once; the rest queue and start as writes end", async () => {
    const fake = new FakeWrite();
    fake.hold();
    const batcher = new GroupCommitBatcher({
      write: fake.write,
      limits: { maxFiles: 1, maxConcurrentWrites: 2 },
    });
    // Six tables: one table is never written twice at once (see below).
    const pending = Array.from({ length: 6 }, (_, i) =>
      batcher.add(file(`f${i}`, 10, target({ table: `lake.ns.t${i}` }))),
    );
    expect(fake.attempts).toHaveLength(2);
    expect(batcher.writing).toBe(2);
    expect(batcher.waiting).toBe(4);
    fake.releaseOne();
    await vi.waitFor(() => expect(fake.attempts).toHaveLength(3));
    expect(batcher.writing).toBe(2);
    fake.releaseAll();
    await Promise.all(pending);
    expect(fake.attempts).toHaveLength(6);
    expect(fake.maxRunning).toBe(2);
    await batcher.close();
  });

  it("writes one table once at a time: its next batch gathers past maxWaitMs until the write ends, then goes", async () => {
    const fake = new FakeWrite();
    fake.hold();
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxWaitMs: 20 } });
    const first = batcher.add(file("a"));
    await vi.waitFor(() => expect(fake.attempts).toHaveLength(1));
    const next = ["b", "c", "d"].map((name) => batcher.add(file(name)));
    // Long past maxWaitMs, the table is still being written: b, c and d keep waiting together.
    await new Promise((r) => setTimeout(r, 150));
    expect(fake.attempts).toHaveLength(1);
    expect(batcher.waiting).toBe(3);
    // Another table is not held up.
    const other = batcher.add(file("x", 10, target({ table: "lake.ns.other" })));
    await vi.waitFor(() => expect(fake.attempts).toHaveLength(2));
    fake.releaseAll();
    await Promise.all([first, ...next, other]);
    expect(fake.attempts.map((attempt) => attempt.files)).toEqual([["a"], ["x"], ["b", "c", "d"]]);
    await batcher.close();
  });

  it("lets the next batch of a table start beside a write that has run for slowWriteMs", async () => {
    const fake = new FakeWrite();
    fake.hold();
    const batcher = new GroupCommitBatcher({
      write: fake.write,
      limits: { maxWaitMs: 10, slowWriteMs: 200 },
    });
    const stuck = batcher.add(file("a"));
    await vi.waitFor(() => expect(fake.attempts).toHaveLength(1));
    const next = batcher.add(file("b"));
    await new Promise((r) => setTimeout(r, 100));
    expect(fake.attempts).toHaveLength(1);
    await vi.waitFor(() => expect(fake.attempts).toHaveLength(2), { timeout: 2_000 });
    expect(fake.maxRunning).toBe(2);
    fake.releaseAll();
    await Promise.all([stuck, next]);
    await batcher.close();
  });

  it("still cuts a batch at maxFiles while its table is written, and writes the full batches one by one", async () => {
    const fake = new FakeWrite();
    fake.hold();
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxFiles: 2, maxWaitMs: 10 } });
    const pending = ["a", "b", "c", "d", "e"].map((name) => batcher.add(file(name)));
    await vi.waitFor(() => expect(fake.attempts).toHaveLength(1));
    await new Promise((r) => setTimeout(r, 50));
    expect(fake.attempts).toHaveLength(1);
    fake.releaseAll();
    await Promise.all(pending);
    expect(fake.attempts.map((attempt) => attempt.files)).toEqual([["a", "b"], ["c", "d"], ["e"]]);
    expect(fake.maxRunning).toBe(1);
    await batcher.close();
  });

  it("lets a file leave while its batch gathers; the rest of the batch is written without it", async () => {
    const fake = new FakeWrite();
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxWaitMs: 60_000 } });
    const leaving = new AbortController();
    const left = batcher.add(file("a", 10, target(), leaving.signal));
    const stays = batcher.add(file("b"));
    expect(batcher.waiting).toBe(2);
    leaving.abort(new Error("job interrupted"));
    await expect(left).rejects.toThrow("job interrupted");
    expect(batcher.waiting).toBe(1);
    batcher.flush();
    await stays;
    expect(fake.attempts.map((attempt) => attempt.files)).toEqual([["b"]]);
    await batcher.close();
  });

  it("lets a file leave while its batch is queued behind the concurrency cap; it is never written", async () => {
    const fake = new FakeWrite();
    fake.hold();
    const batcher = new GroupCommitBatcher({
      write: fake.write,
      limits: { maxFiles: 1, maxConcurrentWrites: 1 },
    });
    const first = batcher.add(file("a"));
    const leaving = new AbortController();
    const queued = batcher.add(file("b", 10, target(), leaving.signal));
    expect(batcher.waiting).toBe(1);
    leaving.abort(new Error("job interrupted"));
    await expect(queued).rejects.toThrow("job interrupted");
    expect(batcher.waiting).toBe(0);
    fake.releaseAll();
    await first;
    await batcher.close();
    expect(fake.attempts.map((attempt) => attempt.files)).toEqual([["a"]]);
  });

  it("aborts a write's signal only once every one of its files' signals is aborted", async () => {
    const fake = new FakeWrite();
    fake.hold();
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxFiles: 2, maxWaitMs: 60_000 } });
    const one = new AbortController();
    const two = new AbortController();
    const pending = [
      batcher.add(file("a", 10, target(), one.signal)),
      batcher.add(file("b", 10, target(), two.signal)),
    ].map((promise) => promise.catch((error: unknown) => error));
    const signal = fake.attempts[0]?.signal;
    expect(signal?.aborted).toBe(false);
    one.abort(new Error("stop"));
    expect(signal?.aborted).toBe(false); // one file still wants the write
    expect(batcher.writing).toBe(1);
    two.abort(new Error("stop too"));
    expect(signal?.aborted).toBe(true);
    fake.releaseAll();
    await Promise.all(pending);
    await batcher.close();
  });

  it("close writes what is gathering at once and waits until the write has ended; then takes no more files", async () => {
    const fake = new FakeWrite();
    fake.hold();
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxWaitMs: 60_000 } });
    const pending = batcher.add(file("a"));
    const closing = watch(batcher.close());
    expect(fake.attempts.map((attempt) => attempt.files)).toEqual([["a"]]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(closing.settled()).toBe(false);
    fake.releaseAll();
    await closing.promise;
    expect(fake.finished).toBe(1);
    await expect(pending).resolves.toMatchObject({ records: 1 });
    await expect(batcher.add(file("b"))).rejects.toBeInstanceOf(BatcherClosedError);
  });

  it("splits a failing batch in halves until each bad file fails alone; its neighbours land once, and close waits for it all", async () => {
    const fake = new FakeWrite();
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxFiles: 8, maxWaitMs: 60_000 } });
    const all = ["a", "bad1", "c", "d", "e", "f", "bad2", "h"];
    const watched = all.map((name) => watch(batcher.add(file(name))));
    await batcher.close();
    expect(watched.every((w) => w.settled())).toBe(true);
    const results = await Promise.allSettled(watched.map((w) => w.promise));
    expect(Object.fromEntries(all.map((name, i) => [name, results[i]?.status]))).toEqual({
      a: "fulfilled",
      bad1: "rejected",
      c: "fulfilled",
      d: "fulfilled",
      e: "fulfilled",
      f: "fulfilled",
      bad2: "rejected",
      h: "fulfilled",
    });
    expect(fileSets(fake.attempts)).toEqual(
      [
        "a,bad1,bad2,c,d,e,f,h",
        "a,bad1,c,d",
        "bad2,e,f,h",
        "a,bad1",
        "c,d",
        "e,f",
        "bad2,h",
        "a",
        "bad1",
        "bad2",
        "h",
      ].sort(),
    );
    // A fresh batch id for every attempt.
    expect(new Set(fake.attempts.map((attempt) => attempt.batchId)).size).toBe(fake.attempts.length);
    const rejected = results[1] as PromiseRejectedResult;
    expect(rejected.reason).toBeInstanceOf(LakeferryError);
    expect((rejected.reason as LakeferryError).code).toBe("SPARK_BAD_INPUT");
  });

  it("takes out the file a SparkConnectError names (as Spark spells its path) instead of halving", async () => {
    const namingBad: Rule = (attempt) => {
      const bad = attempt.files.find((f) => nameOf(f.uri).startsWith("bad"));
      if (!bad) return committed(attempt);
      const error = new SparkConnectError("malformed record", {
        grpcCode: 13,
        retryable: false,
        filePath: bad.uri.replace("file:///", "file:/"),
      });
      // The lifecycle may wrap Spark's error: the batcher looks along the cause chain.
      const wrapped = new LakeferryError("BATCH_WRITE", "write failed", { retryable: false, cause: error });
      return attempt.files.length > 1 ? { kind: "split", error: wrapped } : { kind: "failed", error };
    };
    const fake = new FakeWrite(namingBad);
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxFiles: 6, maxWaitMs: 60_000 } });
    const all = ["a", "b", "bad", "d", "e", "f"];
    const results = await Promise.allSettled(all.map((name) => batcher.add(file(name))));
    expect(results.map((result) => result.status)).toEqual([
      "fulfilled",
      "fulfilled",
      "rejected",
      "fulfilled",
      "fulfilled",
      "fulfilled",
    ]);
    expect(fileSets(fake.attempts)).toEqual(["a,b,bad,d,e,f", "a,b,d,e,f", "bad"]);
    expect((results[2] as PromiseRejectedResult).reason).toBeInstanceOf(SparkConnectError);
    await batcher.close();
  });

  it("halves a batch whose error names a file that is not in it", async () => {
    const namingStranger: Rule = (attempt) => {
      if (!attempt.files.some((f) => nameOf(f.uri).startsWith("bad"))) return committed(attempt);
      const error = new SparkConnectError("malformed record", {
        grpcCode: 13,
        retryable: false,
        filePath: "file:/elsewhere/bad",
      });
      return attempt.files.length > 1 ? { kind: "split", error } : { kind: "failed", error };
    };
    const fake = new FakeWrite(namingStranger);
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxFiles: 4, maxWaitMs: 60_000 } });
    await Promise.allSettled(["a", "b", "bad", "d"].map((name) => batcher.add(file(name))));
    expect(fileSets(fake.attempts)).toEqual(["a,b", "a,b,bad,d", "bad", "bad,d", "d"]);
    await batcher.close();
  });

  it("settles the files a split verdict names (bad records beyond the limit) with their own errors, and writes the rest again together", async () => {
    const refusing: Rule = (attempt) => {
      const refused = attempt.files.filter((f) => nameOf(f.uri).startsWith("bad"));
      if (refused.length === 0) return committed(attempt);
      const settled = new Map<string, unknown>(
        refused.map((f) => [
          f.uri,
          new LakeferryError("BAD_RECORDS", `${nameOf(f.uri)} has bad records`, { retryable: false }),
        ]),
      );
      const error = new LakeferryError("BAD_RECORDS", "files refused", { retryable: false });
      return { kind: "split", error, settled };
    };
    const fake = new FakeWrite(refusing);
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxFiles: 5, maxWaitMs: 60_000 } });
    const all = ["a", "bad1", "c", "bad2", "e"];
    const results = await Promise.allSettled(all.map((name) => batcher.add(file(name))));
    expect(results.map((result) => result.status)).toEqual([
      "fulfilled",
      "rejected",
      "fulfilled",
      "rejected",
      "fulfilled",
    ]);
    expect(((results[1] as PromiseRejectedResult).reason as Error).message).toBe("bad1 has bad records");
    expect(((results[3] as PromiseRejectedResult).reason as Error).message).toBe("bad2 has bad records");
    // No halving: the refused files leave, the rest goes again as one batch.
    expect(fileSets(fake.attempts)).toEqual(["a,bad1,bad2,c,e", "a,c,e"]);
    await batcher.close();
  });

  it("rejects every file of a failed batch with the verdict's error, without splitting", async () => {
    const error = new LakeferryError("SPARK_UNAVAILABLE", "spark is down", { retryable: true });
    const fake = new FakeWrite(() => ({ kind: "failed", error }));
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxFiles: 4, maxWaitMs: 60_000 } });
    const results = await Promise.allSettled(["a", "b", "c", "d"].map((name) => batcher.add(file(name))));
    expect(results).toEqual(Array.from({ length: 4 }, () => ({ status: "rejected", reason: error })));
    expect(fake.attempts).toHaveLength(1);
    await batcher.close();
  });

  it("rejects every file of a fenced batch with BatchFencedError naming the batch", async () => {
    const fake = new FakeWrite(() => ({ kind: "fenced" }));
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxFiles: 3, maxWaitMs: 60_000 } });
    const results = await Promise.allSettled(["a", "b", "c"].map((name) => batcher.add(file(name))));
    expect(fake.attempts).toHaveLength(1);
    const batchId = fake.attempts[0]?.batchId ?? "no attempt";
    for (const result of results) {
      expect(result.status).toBe("rejected");
      const reason = (result as PromiseRejectedResult).reason as unknown;
      expect(reason).toBeInstanceOf(BatchFencedError);
      expect((reason as BatchFencedError).message).toContain(batchId);
    }
    await batcher.close();
  });

  it("rejects every file of an in-doubt batch with the verdict's error and writes it no more", async () => {
    const error = new LakeferryError("BATCH_IN_DOUBT", "postgres went away while deciding", {
      retryable: true,
    });
    const fake = new FakeWrite(() => ({ kind: "in-doubt", error }));
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxFiles: 3, maxWaitMs: 60_000 } });
    const results = await Promise.allSettled(["a", "b", "c"].map((name) => batcher.add(file(name))));
    expect(results).toEqual(Array.from({ length: 3 }, () => ({ status: "rejected", reason: error })));
    expect(fake.attempts).toHaveLength(1);
    await batcher.close();
  });

  it("treats a write that throws as in doubt: every file rejects with the thrown error, and later batches are still written", async () => {
    const thrown = new Error("lifecycle bug");
    let throwing = true;
    const fake = new FakeWrite((attempt) => {
      if (throwing) throw thrown;
      return committed(attempt);
    });
    const batcher = new GroupCommitBatcher({ write: fake.write, limits: { maxFiles: 2, maxWaitMs: 60_000 } });
    const results = await Promise.allSettled(["a", "b"].map((name) => batcher.add(file(name))));
    expect(results).toEqual([
      { status: "rejected", reason: thrown },
      { status: "rejected", reason: thrown },
    ]);
    expect(fake.attempts).toHaveLength(1);
    throwing = false;
    await expect(Promise.all([batcher.add(file("c")), batcher.add(file("d"))])).resolves.toHaveLength(2);
    expect(fake.attempts).toHaveLength(2);
    await batcher.close();
  });
});
