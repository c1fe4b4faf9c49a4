import { LakeferryError } from "@lakeferry/core";
import type { BadRecordsPolicy, FileFormat, SchemaEvolution } from "@lakeferry/iceberg";
import { SparkConnectError } from "@lakeferry/spark-connect";
import { randomUUID } from "node:crypto";
import { BatchFencedError, type BatchVerdict } from "./batch-lifecycle.ts";

export type { BatchWriter } from "./batch-lifecycle.ts";

/** When a gathering batch is written: whichever limit is reached first. */
export interface BatchLimits {
  /** Files per batch. Default 1000. */
  maxFiles: number;
  /** Bytes (sum of file sizes) per batch. Default 1 GiB (bench:vs-streaming: 20 files of 50 MB in one job). */
  maxBytes: number;
  /**
   * How long the first file of a batch waits for company, in ms, when its table has no write in flight.
   * While one is in flight the batch keeps gathering until that write ends (or a size limit is reached):
   * batches grow with the backlog instead of being cut small by the timer. Default 250.
   */
  maxWaitMs: number;
  /**
   * Writes running at once in this process; closed batches beyond it queue (and batches still gathering
   * keep growing meanwhile). Default 2.
   */
  maxConcurrentWrites: number;
  /**
   * Writes running at once to one table in this process. Iceberg commits to one table one at a time, so
   * more only compete for Spark and retry their commits. Default 1.
   */
  maxWritesPerTable: number;
  /**
   * A write running longer than this, in ms, no longer holds its table: the next batch may start beside it
   * (a stuck Spark call or a paused process must not stall the table). Default 15 000.
   */
  slowWriteMs: number;
}

export const DEFAULT_BATCH_LIMITS: Readonly<BatchLimits> = {
  maxFiles: 1000,
  maxBytes: 1024 * 1024 * 1024,
  maxWaitMs: 250,
  maxConcurrentWrites: 2,
  maxWritesPerTable: 1,
  slowWriteMs: 15_000,
};

/** Where and how files are written. Only files with equal targets share a batch. */
export interface BatchTarget {
  ingestionId: number;
  table: string;
  format: FileFormat;
  schema?: string;
  options: Record<string, string>;
  mode: "append" | "replace";
  /** Each source file's rows go to data files of their own (ingestions that `replace` modified files). */
  isolateFiles: boolean;
  /** What the files' columns may do to the table (see the ingestion's `schemaEvolution`). */
  schemaEvolution: SchemaEvolution;
  /** Types for inferred columns (Spark DDL), see the ingestion's `schemaHints`. */
  schemaHints?: string;
  /** The rescued-data column under `rescue` (absent: `_rescued_data`). */
  rescuedDataColumn?: string;
  /** What a malformed record does to its file; absent: abortFile. */
  badRecords?: BadRecordsPolicy;
}

/** One file handed to the batcher. */
export interface BatchFile {
  uri: string;
  /** Size in bytes (counts towards `maxBytes`). */
  bytes: number;
  target: BatchTarget;
  /**
   * Written in a batch of its own that takes on no other file (a large file: its Spark job and its write
   * deadline are its own). Default false.
   */
  alone?: boolean;
  /**
   * Aborting takes the file out of its batch while the batch is still gathering or queued (the promise
   * rejects with the reason). A batch already being written is interrupted only when every one of its
   * files' signals is aborted.
   */
  signal?: AbortSignal;
}

/** One write attempt: a fresh batch id per attempt. */
export interface BatchAttempt<F extends BatchFile> {
  batchId: string;
  target: BatchTarget;
  files: F[];
  /**
   * Takes on more files for this attempt (the batcher's `adopt`), adding them to `files`: called by the
   * writer once the write may start. Absent when there is nothing to adopt with, and for the parts of a
   * split batch (which must stay small until a failing file is alone).
   */
  grow?: () => Promise<void>;
  /**
   * The lone file of this attempt is the one the failure of an earlier attempt (`batchId`) named: the
   * writer may record that failure for it without reading it again, when the error says the file itself is
   * bad (not retryable).
   */
  blamed?: { error: unknown; batchId: string };
}

/** A file taken on by a batch as it is written; `follow` is given the file's fate. */
export interface AdoptedFile<F extends BatchFile> {
  file: F;
  follow: (commit: Promise<FileCommit>) => void;
}

export interface GroupCommitBatcherOptions<F extends BatchFile> {
  /**
   * Writes one attempt of a batch (a fresh batch id per attempt) and records its outcome: the batch
   * lifecycle. `signal` is aborted only when every file of the attempt gave up on it.
   */
  write: (attempt: BatchAttempt<F>, signal: AbortSignal) => Promise<BatchVerdict>;
  limits?: Partial<BatchLimits>;
  /**
   * More files for a batch about to be written (at most `room` files and `roomBytes` bytes, of the batch's
   * target): they become members of the batch like any added file, so they are split, retried and settled
   * with it. Default: none.
   */
  adopt?: (attempt: BatchAttempt<F>, room: { files: number; bytes: number }) => Promise<AdoptedFile<F>[]>;
  /**
   * The most files that can be in the batcher at once (the worker's job concurrency). Once that many are
   * held no more can arrive, so gathering batches stop waiting for company (maxWaitMs) and go as soon as
   * their table is free. Default: no such limit.
   */
  capacity?: number;
}

/** What a file's promise resolves to once its batch committed. */
export interface FileCommit {
  batchId: string;
  /** The snapshot that made the batch visible; null when recovery found it published without knowing it. */
  snapshotId: string | null;
  /** Rows of this file in the snapshot. */
  records: number;
}

/** The batcher is closed and takes no more files. */
export class BatcherClosedError extends LakeferryError {
  constructor() {
    super("BATCHER_CLOSED", "the batcher is closing and takes no more files", { retryable: true });
  }
}

interface Member<F extends BatchFile> {
  file: F;
  resolve: (commit: FileCommit) => void;
  reject: (error: unknown) => void;
  /** Removes the abort listener. */
  release: () => void;
  /** The batch the member is in until its write starts. */
  holder: Holder<F> | undefined;
}

interface Holder<F extends BatchFile> {
  key: string;
  target: BatchTarget;
  members: Set<Member<F>>;
  bytes: number;
  timer: NodeJS.Timeout | undefined;
  /** Its first file waited maxWaitMs: it closes as soon as its table has no write in flight. */
  due: boolean;
  state: "gathering" | "ready";
  /** Part of a split batch, or a file written alone: written as it is, taking on no more files. */
  split?: boolean;
  /** A lone file the failure of an earlier attempt named (see BatchAttempt.blamed). */
  blamed?: { error: unknown; batchId: string };
}

/**
 * Group commit: gathers files for the same target into one batch, which is written (one `BatchWriter.write`,
 * so one Spark job and one Iceberg commit) once it holds `maxFiles` files or `maxBytes` bytes, or its first
 * file waited `maxWaitMs` and its table has no write in flight (adaptive: under a backlog each batch holds
 * what arrived while the previous one was written). A batch that fails permanently is split in halves (or
 * the file its error names is taken out) and written again until the bad files are alone, so their
 * neighbours still land.
 */
export class GroupCommitBatcher<F extends BatchFile = BatchFile> {
  readonly limits: Readonly<BatchLimits>;
  readonly #options: GroupCommitBatcherOptions<F>;
  readonly #gathering = new Map<string, Holder<F>>();
  readonly #ready: Holder<F>[] = [];
  readonly #writes = new Set<Promise<void>>();
  /** Writes in flight per table that have not been running for slowWriteMs yet. */
  readonly #writingTo = new Map<string, number>();
  /** Files added (not taken on by `adopt`) and not settled yet: gathering, queued or being written. */
  #held = 0;
  #closed = false;

  constructor(options: GroupCommitBatcherOptions<F>) {
    // Limits given as undefined keep their defaults.
    const given = Object.entries(options.limits ?? {}).filter(([, value]) => value !== undefined);
    const limits: BatchLimits = { ...DEFAULT_BATCH_LIMITS, ...Object.fromEntries(given) };
    for (const [name, value] of Object.entries(limits)) {
      const least = name === "maxWaitMs" ? 0 : 1;
      if (!(value >= least)) throw new RangeError(`batch ${name} must be a number ≥ ${least}, got ${value}`);
    }
    this.limits = limits;
    this.#options = options;
    if (options.capacity !== undefined && !(options.capacity >= 1)) {
      throw new RangeError(`batcher capacity must be a number ≥ 1, got ${options.capacity}`);
    }
  }

  /** Files waiting in batches that are not being written yet. */
  get waiting(): number {
    let count = 0;
    for (const holder of this.#gathering.values()) count += holder.members.size;
    for (const holder of this.#ready) count += holder.members.size;
    return count;
  }

  /** Writes running now. */
  get writing(): number {
    return this.#writes.size;
  }

  /** Adds a file; resolves when its rows are committed, rejects with the error that decided its fate. */
  add(file: F): Promise<FileCommit> {
    if (this.#closed) return Promise.reject(new BatcherClosedError());
    if (file.signal?.aborted) return Promise.reject(file.signal.reason as Error);
    return new Promise<FileCommit>((resolve, reject) => {
      const member = this.#member(file, resolve, reject);
      if (file.signal) {
        const signal = file.signal;
        const onAbort = (): void => this.#withdraw(member, signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        member.release = () => signal.removeEventListener("abort", onAbort);
      }
      if (file.alone === true) {
        this.#enqueueAlone(member);
        this.#dueWhenFull();
        return;
      }
      const key = targetKey(file.target);
      let holder = this.#gathering.get(key);
      if (!holder) {
        holder = {
          key,
          target: file.target,
          members: new Set(),
          bytes: 0,
          timer: undefined,
          due: false,
          state: "gathering",
        };
        this.#gathering.set(key, holder);
        const gathering = holder;
        holder.timer = setTimeout(() => this.#due(gathering), this.limits.maxWaitMs);
      }
      holder.members.add(member);
      member.holder = holder;
      holder.bytes += file.bytes;
      if (holder.members.size >= this.limits.maxFiles || holder.bytes >= this.limits.maxBytes)
        this.#close(holder);
      else this.#dueWhenFull();
    });
  }

  /** Every job slot is taken: no company can come until something settles, so gathering batches go. */
  #dueWhenFull(): void {
    if (this.#held < (this.#options.capacity ?? Infinity)) return;
    for (const gathering of [...this.#gathering.values()]) this.#due(gathering);
  }

  /** Queues a file that is written alone as a batch of its own, ready at once. */
  #enqueueAlone(member: Member<F>): void {
    const holder: Holder<F> = {
      key: targetKey(member.file.target),
      target: member.file.target,
      members: new Set([member]),
      bytes: member.file.bytes,
      timer: undefined,
      due: true,
      state: "ready",
      split: true,
    };
    member.holder = holder;
    this.#ready.push(holder);
    this.#pump();
  }

  /** A member of the batcher: counted in #held until its promise settles. */
  #member(
    file: F,
    resolve: (commit: FileCommit) => void,
    reject: (error: unknown) => void,
    holdsSlot = true,
  ): Member<F> {
    const slot = holdsSlot ? 1 : 0;
    this.#held += slot;
    return {
      file,
      resolve: (commit) => {
        this.#held -= slot;
        resolve(commit);
      },
      reject: (error) => {
        this.#held -= slot;
        reject(error);
      },
      release: () => {},
      holder: undefined,
    };
  }

  /** Writes every gathering batch now instead of waiting. */
  flush(): void {
    for (const holder of [...this.#gathering.values()]) this.#close(holder);
  }

  /** Takes no more files, writes what is gathered now and waits until every write has settled. */
  async close(): Promise<void> {
    this.#closed = true;
    this.flush();
    for (;;) {
      this.#pump();
      if (this.#writes.size === 0) return;
      await Promise.allSettled([...this.#writes]);
    }
  }

  /** The first file of a gathering batch waited maxWaitMs: close it, unless its table is being written. */
  #due(holder: Holder<F>): void {
    clearTimeout(holder.timer);
    holder.due = true;
    if (!this.#tableBusy(holder.target.table)) this.#close(holder);
  }

  #tableBusy(table: string): boolean {
    return (this.#writingTo.get(table) ?? 0) >= this.limits.maxWritesPerTable;
  }

  #close(holder: Holder<F>): void {
    if (holder.state !== "gathering") return;
    clearTimeout(holder.timer);
    this.#gathering.delete(holder.key);
    holder.state = "ready";
    if (holder.members.size > 0) this.#ready.push(holder);
    this.#pump();
  }

  #withdraw(member: Member<F>, reason: unknown): void {
    const holder = member.holder;
    if (!holder) return; // already being written: see #write
    holder.members.delete(member);
    holder.bytes -= member.file.bytes;
    member.holder = undefined;
    if (holder.members.size === 0) {
      clearTimeout(holder.timer);
      if (holder.state === "gathering") this.#gathering.delete(holder.key);
      const index = this.#ready.indexOf(holder);
      if (index >= 0) this.#ready.splice(index, 1);
    }
    member.release();
    member.reject(reason);
  }

  #pump(): void {
    while (this.#writes.size < this.limits.maxConcurrentWrites) {
      const index = this.#ready.findIndex((holder) => !this.#tableBusy(holder.target.table));
      if (index < 0) return;
      const [holder] = this.#ready.splice(index, 1) as [Holder<F>];
      const table = holder.target.table;
      const members = [...holder.members];
      for (const member of members) member.holder = undefined;
      this.#writingTo.set(table, (this.#writingTo.get(table) ?? 0) + 1);
      let holdsTable = true;
      const letGo = (): void => {
        if (!holdsTable) return;
        holdsTable = false;
        const left = (this.#writingTo.get(table) ?? 1) - 1;
        if (left > 0) this.#writingTo.set(table, left);
        else this.#writingTo.delete(table);
        // What gathered for this table while it was written goes next, if it has waited long enough.
        for (const gathering of [...this.#gathering.values()]) {
          if (gathering.due && gathering.target.table === table && !this.#tableBusy(table)) {
            this.#close(gathering);
          }
        }
      };
      const slow = setTimeout(() => {
        letGo();
        this.#pump();
      }, this.limits.slowWriteMs);
      const write = this.#write(holder, members).finally(() => {
        clearTimeout(slow);
        this.#writes.delete(write);
        letGo();
        this.#pump();
      });
      this.#writes.add(write);
    }
  }

  async #write(holder: Holder<F>, members: Member<F>[]): Promise<void> {
    const target = holder.target;
    const attempt: BatchAttempt<F> = {
      batchId: randomUUID(),
      target,
      files: members.map((member) => member.file),
      ...(holder.blamed === undefined || members.length !== 1 ? {} : { blamed: holder.blamed }),
    };
    const adopt = this.#options.adopt;
    if (adopt !== undefined && holder.split !== true && !this.#closed) {
      attempt.grow = async () => {
        const bytes = attempt.files.reduce((sum, file) => sum + file.bytes, 0);
        const room = {
          files: this.limits.maxFiles - attempt.files.length,
          bytes: this.limits.maxBytes - bytes,
        };
        if (room.files <= 0 || room.bytes <= 0) return;
        for (const adopted of await adopt(attempt, room)) {
          const commit = new Promise<FileCommit>((resolve, reject) => {
            // Not counted against capacity: no job slot holds it.
            members.push(this.#member(adopted.file, resolve, reject, false));
          });
          attempt.files.push(adopted.file);
          adopted.follow(commit);
          if (adopted.file.signal) watch(adopted.file.signal);
        }
        check();
      };
    }
    // The write is interrupted only when every file gave up on it (a worker shutting down aborts them all),
    // the files the batch took on included.
    const controller = new AbortController();
    const detach: (() => void)[] = [];
    const check = (): void => {
      if (members.length > 0 && members.every((member) => member.file.signal?.aborted)) {
        controller.abort(members[0]?.file.signal?.reason);
      }
    };
    const watch = (signal: AbortSignal): void => {
      signal.addEventListener("abort", check, { once: true });
      detach.push(() => signal.removeEventListener("abort", check));
    };
    for (const member of members) if (member.file.signal) watch(member.file.signal);
    check();
    const finish = (outcome: { commit: FileCommit } | { error: unknown }, member: Member<F>): void => {
      member.release();
      if ("commit" in outcome) member.resolve(outcome.commit);
      else member.reject(outcome.error);
    };

    let verdict: BatchVerdict;
    try {
      verdict = await this.#options.write(attempt, controller.signal);
    } catch (error) {
      verdict = { kind: "in-doubt", error };
    } finally {
      detach.forEach((undo) => undo());
    }
    switch (verdict.kind) {
      case "committed":
        for (const member of members) {
          const records = verdict.records.get(member.file.uri) ?? 0;
          finish({ commit: { batchId: attempt.batchId, snapshotId: verdict.snapshotId, records } }, member);
        }
        return;
      case "split": {
        const settled = verdict.settled;
        if (settled !== undefined) {
          // The files whose bad records decided their fate are recorded; the others go again together.
          const rest = members.filter((member) => !settled.has(member.file.uri));
          for (const member of members) {
            if (settled.has(member.file.uri)) finish({ error: settled.get(member.file.uri) }, member);
          }
          if (rest.length > 0) this.#requeue(target, rest);
          return;
        }
        const { suspect, rest } = splitMembers(members, verdict.error);
        if (suspect) this.#requeue(target, [suspect], { error: verdict.error, batchId: attempt.batchId });
        for (const part of rest) this.#requeue(target, part);
        return;
      }
      case "fenced": {
        const error = new BatchFencedError(attempt.batchId);
        for (const member of members) finish({ error }, member);
        return;
      }
      case "failed":
      case "in-doubt":
        for (const member of members) finish({ error: verdict.error }, member);
        return;
    }
  }

  /** Puts part of a split batch back in line, ahead of new batches. */
  #requeue(target: BatchTarget, members: Member<F>[], blamed?: Holder<F>["blamed"]): void {
    const holder: Holder<F> = {
      key: targetKey(target),
      target,
      members: new Set(members),
      bytes: members.reduce((sum, member) => sum + member.file.bytes, 0),
      timer: undefined,
      due: true,
      state: "ready",
      split: true,
      ...(blamed === undefined ? {} : { blamed }),
    };
    for (const member of members) member.holder = holder;
    // Files whose signal was aborted while their batch was written leave now.
    for (const member of members) {
      if (member.file.signal?.aborted) this.#withdraw(member, member.file.signal.reason);
    }
    if (holder.members.size > 0) this.#ready.unshift(holder);
  }
}

/**
 * Splits a failed batch. When Spark names one of the batch's files as the one it could not read, that file
 * goes alone and the rest stay together; otherwise the batch is cut in halves. Either way a file is only
 * blamed once it fails alone.
 */
function splitMembers<F extends BatchFile>(
  members: Member<F>[],
  error: unknown,
): { suspect?: Member<F>; rest: Member<F>[][] } {
  const named = namedFile(error);
  const suspects = named === undefined ? [] : members.filter((member) => sameFile(member.file.uri, named));
  if (suspects.length === 1) {
    const [suspect] = suspects as [Member<F>];
    return { suspect, rest: [members.filter((member) => member !== suspect)] };
  }
  const middle = Math.ceil(members.length / 2);
  return { rest: [members.slice(0, middle), members.slice(middle)] };
}

/** The file a Spark error names (`SparkConnectError.filePath`), looked for along the cause chain. */
function namedFile(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if (current instanceof SparkConnectError && current.filePath) return current.filePath;
    current = current.cause;
  }
  return undefined;
}

/** Whether a URI and a path as Spark prints it (`file:/x`, URI-encoded, an `s3a://` form) are one file. */
function sameFile(uri: string, named: string): boolean {
  const strip = (value: string): string =>
    safeDecode(value.replace(/^[a-z][a-z0-9+.-]*:\/*/i, "/")).replace(/^\/+/, "/");
  return strip(uri) === strip(named);
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** Files with equal keys may share a batch. */
export function targetKey(target: BatchTarget): string {
  const options = Object.entries(target.options).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([
    target.ingestionId,
    target.table,
    target.format,
    target.schema ?? null,
    options,
    target.mode,
    target.isolateFiles,
    target.schemaEvolution,
    target.schemaHints ?? null,
    target.rescuedDataColumn ?? null,
    target.badRecords ?? null,
  ]);
}
