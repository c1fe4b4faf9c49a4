import { isRetryable, LakeferryError } from "@lakeferry/core";
import type { FileFormat, WriteBatch, WriteResult } from "@lakeferry/iceberg";
import type { ExecutionOptions } from "@lakeferry/spark-connect";
import { randomUUID } from "node:crypto";

/** What the batcher writes through: `IcebergWriter` in production, anything shaped like it in tests. */
export interface BatchWriter {
  write(batch: WriteBatch, options?: ExecutionOptions): Promise<WriteResult>;
  findCommittedBatch(
    table: string,
    batchId: string,
    options?: ExecutionOptions,
  ): Promise<WriteResult | undefined>;
}

/** When a gathering batch is written: whichever limit is reached first. */
export interface BatchLimits {
  /** Files per batch. Default 100. */
  maxFiles: number;
  /** Bytes (sum of file sizes) per batch. Default 256 MiB. */
  maxBytes: number;
  /** How long the first file of a batch waits for company, in ms. Default 250. */
  maxWaitMs: number;
  /**
   * Writes running at once in this process; closed batches beyond it queue (and batches still gathering
   * keep growing meanwhile). Default 2.
   */
  maxConcurrentWrites: number;
}

export const DEFAULT_BATCH_LIMITS: Readonly<BatchLimits> = {
  maxFiles: 100,
  maxBytes: 256 * 1024 * 1024,
  maxWaitMs: 250,
  maxConcurrentWrites: 2,
};

/** Where and how files are written. Only files with equal targets share a batch. */
export interface BatchTarget {
  ingestionId: number;
  table: string;
  format: FileFormat;
  schema?: string;
  options: Record<string, string>;
  mode: "append" | "replace";
}

/** One file handed to the batcher. */
export interface BatchFile {
  uri: string;
  /** Size in bytes (counts towards `maxBytes`). */
  bytes: number;
  target: BatchTarget;
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
}

/**
 * How a write attempt ended, told to `settle` before the files' promises settle:
 * - `committed`: every file landed in `result.snapshotId`;
 * - `failed` with `split: false`: every file fails with `error` (retryable or not, as `error` says);
 * - `failed` with `split: true`: a permanent error in a batch of several files; nothing is decided for the
 *   files yet, they are written again in smaller batches until the bad ones are alone.
 */
export type BatchSettlement =
  { kind: "committed"; result: WriteResult } | { kind: "failed"; error: unknown; split: boolean };

export interface GroupCommitBatcherOptions<F extends BatchFile> {
  writer: BatchWriter;
  limits?: Partial<BatchLimits>;
  /** Runs before each write attempt, e.g. to record the batch id before Spark can commit it. */
  open?: (attempt: BatchAttempt<F>) => Promise<void>;
  /** Runs after each write attempt with its outcome, e.g. to record every file's outcome at once. */
  settle?: (attempt: BatchAttempt<F>, settlement: BatchSettlement) => Promise<void>;
  /**
   * Runs right after a successful write, before `settle`. Test hook for crash injection: the Iceberg
   * commit exists, Postgres does not know yet.
   */
  afterCommit?: (attempt: BatchAttempt<F>, result: WriteResult) => void;
}

/** What a file's promise resolves to once its batch committed. */
export interface FileCommit {
  batchId: string;
  result: WriteResult;
  /** Rows of this file in the snapshot. */
  records: number;
}

/**
 * The write of a batch was interrupted (close timed out): whether Iceberg committed it is unknown, so the
 * batch stays OPEN for the reconciler or the next claimer to resolve by its id.
 */
export class BatchInterruptedError extends LakeferryError {
  readonly batchId: string;

  constructor(batchId: string, cause: unknown) {
    super(
      "BATCH_INTERRUPTED",
      `the write of batch ${batchId} was interrupted; its outcome is resolved later`,
      {
        retryable: true,
        cause,
      },
    );
    this.batchId = batchId;
  }
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
  state: "gathering" | "ready";
}

/**
 * Group commit: gathers files for the same target into one batch, which is written (one `BatchWriter.write`,
 * so one Spark job and one Iceberg commit) once it holds `maxFiles` files or `maxBytes` bytes or its first
 * file waited `maxWaitMs`. A batch that fails permanently is split in halves (or the file its error names
 * is taken out) and written again until the bad files are alone, so their neighbours still land.
 */
export class GroupCommitBatcher<F extends BatchFile = BatchFile> {
  readonly limits: Readonly<BatchLimits>;
  readonly #options: GroupCommitBatcherOptions<F>;
  readonly #gathering = new Map<string, Holder<F>>();
  readonly #ready: Holder<F>[] = [];
  readonly #writes = new Set<Promise<void>>();
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
      const member: Member<F> = { file, resolve, reject, release: () => {}, holder: undefined };
      if (file.signal) {
        const signal = file.signal;
        const onAbort = (): void => this.#withdraw(member, signal.reason);
        signal.addEventListener("abort", onAbort, { once: true });
        member.release = () => signal.removeEventListener("abort", onAbort);
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
          state: "gathering",
        };
        this.#gathering.set(key, holder);
        const gathering = holder;
        holder.timer = setTimeout(() => this.#close(gathering), this.limits.maxWaitMs);
      }
      holder.members.add(member);
      member.holder = holder;
      holder.bytes += file.bytes;
      if (holder.members.size >= this.limits.maxFiles || holder.bytes >= this.limits.maxBytes)
        this.#close(holder);
    });
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
      const holder = this.#ready.shift();
      if (!holder) return;
      const members = [...holder.members];
      for (const member of members) member.holder = undefined;
      const write = this.#write(holder.target, members).finally(() => {
        this.#writes.delete(write);
        this.#pump();
      });
      this.#writes.add(write);
    }
  }

  async #write(target: BatchTarget, members: Member<F>[]): Promise<void> {
    const attempt: BatchAttempt<F> = {
      batchId: randomUUID(),
      target,
      files: members.map((member) => member.file),
    };
    // The write is interrupted only when every file gave up on it (a worker shutting down aborts them all).
    const controller = new AbortController();
    const signals = attempt.files.map((file) => file.signal).filter((signal) => signal !== undefined);
    const detach: (() => void)[] = [];
    if (signals.length === members.length && signals.length > 0) {
      const onAbort = (): void => {
        if (signals.every((signal) => signal.aborted)) controller.abort(signals[0]?.reason);
      };
      for (const signal of signals) {
        signal.addEventListener("abort", onAbort, { once: true });
        detach.push(() => signal.removeEventListener("abort", onAbort));
      }
      onAbort();
    }
    const finish = (outcome: { commit: FileCommit } | { error: unknown }, member: Member<F>): void => {
      member.release();
      if ("commit" in outcome) member.resolve(outcome.commit);
      else member.reject(outcome.error);
    };
    const failAll = (error: unknown): void => {
      for (const member of members) finish({ error }, member);
    };

    try {
      if (this.#options.open) await this.#options.open(attempt);
    } catch (error) {
      detach.forEach((undo) => undo());
      failAll(error);
      return;
    }

    let result: WriteResult;
    try {
      result = await this.#options.writer.write(
        {
          batchId: attempt.batchId,
          table: target.table,
          format: target.format,
          ...(target.schema === undefined ? {} : { schema: target.schema }),
          options: target.options,
          files: attempt.files.map((file) => file.uri),
          mode: target.mode,
        },
        { signal: controller.signal },
      );
    } catch (error) {
      detach.forEach((undo) => undo());
      if (controller.signal.aborted) {
        failAll(new BatchInterruptedError(attempt.batchId, error));
        return;
      }
      const split = !isRetryable(error) && members.length > 1;
      try {
        await this.#options.settle?.(attempt, { kind: "failed", error, split });
      } catch (settleError) {
        failAll(settleError);
        return;
      }
      if (!split) {
        failAll(error);
        return;
      }
      for (const part of splitMembers(members, error)) this.#requeue(target, part);
      return;
    }
    detach.forEach((undo) => undo());

    this.#options.afterCommit?.(attempt, result);
    try {
      await this.#options.settle?.(attempt, { kind: "committed", result });
    } catch (settleError) {
      failAll(settleError);
      return;
    }
    for (const member of members) {
      const records = result.records.get(member.file.uri) ?? 0;
      finish({ commit: { batchId: attempt.batchId, result, records } }, member);
    }
  }

  /** Puts part of a split batch back in line, ahead of new batches. */
  #requeue(target: BatchTarget, members: Member<F>[]): void {
    const holder: Holder<F> = {
      key: targetKey(target),
      target,
      members: new Set(members),
      bytes: members.reduce((sum, member) => sum + member.file.bytes, 0),
      timer: undefined,
      state: "ready",
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
 * Splits a batch that failed permanently. When the error names exactly one of the batch's files (Spark
 * names the file it could not read), that file goes alone and the rest stay together; otherwise the batch
 * is cut in halves. Either way a file is only blamed once it fails alone.
 */
function splitMembers<F extends BatchFile>(members: Member<F>[], error: unknown): Member<F>[][] {
  const text = errorText(error);
  const named = members.filter((member) => mentions(text, member.file.uri));
  if (named.length === 1) {
    const [suspect] = named as [Member<F>];
    return [[suspect], members.filter((member) => member !== suspect)];
  }
  const middle = Math.ceil(members.length / 2);
  return [members.slice(0, middle), members.slice(middle)];
}

/** The messages of an error and its causes. */
function errorText(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    parts.push(current.message);
    current = current.cause;
  }
  return parts.join("\n");
}

/** Whether an error text names a file, in the URI's form or in the forms Spark prints paths in. */
function mentions(text: string, uri: string): boolean {
  const path = uri.replace(/^[a-z][a-z0-9+.-]*:\/\//i, "");
  if (path.length < 3) return false;
  const candidates = new Set([path, safeDecode(path), encodeURI(safeDecode(path))]);
  return [...candidates].some((candidate) => containsWhole(text, candidate));
}

/** `needle` occurs in `text` and is not the prefix of a longer name there (a.json vs a.json.bak). */
function containsWhole(text: string, needle: string): boolean {
  let from = 0;
  for (;;) {
    const at = text.indexOf(needle, from);
    if (at < 0) return false;
    const next = text.slice(at + needle.length, at + needle.length + 2);
    // The name ends here unless a name character follows (a final "." ends a sentence, not the name).
    if (!/^[A-Za-z0-9_\-~%+]/.test(next) && !/^\.[A-Za-z0-9_\-~%+.]/.test(next)) return true;
    from = at + 1;
  }
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

function targetKey(target: BatchTarget): string {
  const options = Object.entries(target.options).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([
    target.ingestionId,
    target.table,
    target.format,
    target.schema ?? null,
    options,
    target.mode,
  ]);
}
