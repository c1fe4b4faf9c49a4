import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "@lakeferry/core";
import type { TableWriteLeases } from "./table-write-lease.ts";

export interface TableClaimGateOptions {
  leases: TableWriteLeases;
  logger: Logger;
  /**
   * How long a job waits for another process's hold on its table to end before it claims its file anyway
   * (and its batch waits for the write lease in turn), in ms. Bounds how long a file can wait for a writer
   * that takes on other files first. Default 10 000.
   */
  deferMaxMs?: number;
  /** How often a waiting process asks for the table's lease again. Default 100 ms (with jitter). */
  pollMs?: number;
}

/** A job's passage through the gate; `leave` once its file is settled or handed on. */
export interface ClaimPass {
  leave(): void;
}

interface TableState {
  /** Jobs past the gate whose files are not settled yet. */
  users: number;
  /** The one wait for the lease that every job of the table in this process shares. */
  waiting: Promise<void> | undefined;
}

/**
 * Lets jobs claim files of a table only in the process that writes it. A worker whose jobs come while
 * another process holds the table's write lease does not claim their files: that writer takes on files
 * still waiting for their first job when its next write starts (BatchLifecycle's adoption), so the backlog
 * goes out in one batch however many workers hold its jobs, instead of one batch per worker. The jobs wait
 * until the other process lets go of the table, then claim (finding most files taken or done), or claim
 * anyway after `deferMaxMs`.
 *
 * The first job of a table in a process asks for the write lease itself, so that of several workers
 * starting together one becomes the writer at once; the lease so taken is deposited for this process's
 * next write of the table (`TableWriteLeases.deposit`: that write, even one already waiting, takes it over),
 * or given back when the jobs that passed with it are all done without a write. A throughput device only: the commit fence keeps every write exactly
 * once whatever the gate lets through.
 */
export class TableClaimGate {
  readonly #leases: TableWriteLeases;
  readonly #logger: Logger;
  readonly #deferMaxMs: number;
  readonly #pollMs: number;
  readonly #tables = new Map<string, TableState>();

  constructor(options: TableClaimGateOptions) {
    this.#leases = options.leases;
    this.#logger = options.logger;
    this.#deferMaxMs = options.deferMaxMs ?? 10_000;
    this.#pollMs = options.pollMs ?? 100;
  }

  /**
   * Resolves when a job of `table` may claim its file in this process: at once while this process holds
   * the table's write lease; otherwise once it takes the lease, or after `deferMaxMs`.
   * @throws the abort reason when `signal` aborts first.
   */
  async enter(table: string, signal: AbortSignal): Promise<ClaimPass> {
    const state = this.#state(table);
    if (!this.#leases.holdsLocally(table)) {
      state.waiting ??= this.#takeOrWait(table).finally(() => {
        state.waiting = undefined;
        // The jobs that waited count themselves in first (their continuations run before this callback):
        // a reservation that none of them is left to use is given back.
        setImmediate(() => this.#settle(table, state));
      });
      await abortable(state.waiting, signal);
    }
    state.users += 1;
    let left = false;
    return {
      leave: () => {
        if (left) return;
        left = true;
        state.users -= 1;
        this.#settle(table, state);
      },
    };
  }

  /** With no job left past the gate: gives back a reservation no write took, and forgets the table. */
  #settle(table: string, state: TableState): void {
    if (state.users > 0 || state.waiting !== undefined) return;
    // Every job that passed with the lease is done and no write took it: let others in.
    const release = this.#leases.withdraw(table);
    if (release) void release();
    if (this.#tables.get(table) === state) this.#tables.delete(table);
  }

  /** Asks for the lease until it is held here or deferMaxMs passed. */
  async #takeOrWait(table: string): Promise<void> {
    const asker = this.#leases.asker(table);
    const started = performance.now();
    for (;;) {
      // An ask that hangs (a Postgres that stopped answering) holds the jobs no longer than deferMaxMs;
      // a lease it takes after that is given back.
      const asking = asker.ask();
      const remainingMs = this.#deferMaxMs - (performance.now() - started);
      const timer = new AbortController();
      const release = await Promise.race([
        asking,
        sleep(Math.max(0, remainingMs), "late" as const, { ref: false, signal: timer.signal }).catch(
          () => "late" as const,
        ),
      ]).finally(() => timer.abort());
      if (release === "late") {
        void asking.then((late) => late?.());
        return;
      }
      if (release) {
        this.#leases.deposit(table, release);
        return;
      }
      // Another write of this process may have taken the lease meanwhile.
      if (this.#leases.holdsLocally(table)) return;
      const waitedMs = performance.now() - started;
      if (waitedMs >= this.#deferMaxMs) {
        this.#logger.debug(
          { table, waitedMs: Math.round(waitedMs) },
          "another worker still writes the table; claiming anyway",
        );
        return;
      }
      await sleep(Math.round(this.#pollMs * (0.5 + Math.random())));
    }
  }

  #state(table: string): TableState {
    let state = this.#tables.get(table);
    if (!state) {
      state = { users: 0, waiting: undefined };
      this.#tables.set(table, state);
    }
    return state;
  }
}

/** `promise`, or the abort reason of `signal` if it aborts first (the promise goes on for others). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: Error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
