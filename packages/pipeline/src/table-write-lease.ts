import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { errorMessage, type Logger } from "@lakeferry/core";
import { acquireLeaseInTurn, releaseMaintenanceLease, type Database } from "@lakeferry/db";

export interface TableWriteLeasesOptions {
  db: Database;
  /** This process (the worker id); each acquisition holds the lease under a token of its own. */
  holder: string;
  logger: Logger;
  /**
   * How long a lease holds without renewal: a process that stops (killed, paused) frees the table after
   * this. Renewed every third of it while its write runs, for as long as the holder said its write may
   * last (`holdMs` of acquire, default 4 × ttlMs), so a write that is stuck but alive lets the next writer
   * in after that. Default 15 s.
   */
  ttlMs?: number;
  /** How often a waiter asks again. Default 100 ms (with jitter). */
  pollMs?: number;
}

/** Gives the lease back at once; never throws (an unreleased lease lapses after its ttl). */
export type ReleaseTableWrite = () => Promise<void>;

/** What a write holds when Postgres could not be asked: nothing to give back. */
const WITHOUT_LEASE: ReleaseTableWrite = async () => {};

/**
 * One write in flight per Iceberg table across the whole fleet: before a batch is written its worker takes
 * the table's lease (`write:<table>` in Postgres), waiting in turn behind the writers that have waited
 * longer. Workers add claiming capacity without adding Spark jobs and commits that compete for one table,
 * and the batches that wait meanwhile grow (see GroupCommitBatcher). A throughput device, not a safety
 * one: the commit fence keeps writes exactly once whatever happens to a lease, so a lease that lapses, or
 * a database that cannot be asked (the write then goes ahead without one), only lets a second write start.
 */
export class TableWriteLeases {
  readonly #db: Database;
  readonly #holder: string;
  readonly #logger: Logger;
  readonly #ttlMs: number;
  readonly #pollMs: number;
  /** Leases this process holds now, per table (writes and reservations). */
  readonly #local = new Map<string, number>();
  /** Leases taken ahead of a write (see `deposit`), per table, each given back if no write takes it. */
  readonly #reserved = new Map<string, { release: ReleaseTableWrite; expiry: NodeJS.Timeout }>();

  constructor(options: TableWriteLeasesOptions) {
    this.#db = options.db;
    this.#holder = options.holder;
    this.#logger = options.logger;
    this.#ttlMs = options.ttlMs ?? 15_000;
    this.#pollMs = options.pollMs ?? 100;
  }

  /**
   * Waits until this write holds `table`'s write lease and keeps it renewed until released, or for
   * `holdMs` at most (the write's own deadline; default 4 × ttlMs).
   * @throws the abort reason when `signal` aborts first.
   */
  async acquire(
    table: string,
    signal: AbortSignal,
    options: { holdMs?: number } = {},
  ): Promise<ReleaseTableWrite> {
    const asker = this.asker(table, options.holdMs);
    for (;;) {
      signal.throwIfAborted();
      // A lease this process took ahead of its next write is that write's, even one already waiting.
      const release = this.withdraw(table) ?? (await asker.ask());
      if (release) return release;
      try {
        await sleep(Math.round(this.#pollMs * (0.5 + Math.random())), undefined, { signal });
      } catch (error) {
        throw signal.aborted ? signal.reason : error;
      }
    }
  }

  /**
   * Keeps a lease taken for `table` (by `asker`) for this process's next write of it, which `acquire`
   * then returns at once. A second deposit while one is kept is released, and so is a deposit that no write
   * takes within ttlMs (so that jobs that pass without writing cannot hold the fleet off). A release for no
   * lease (Postgres could not be asked) is not kept.
   */
  deposit(table: string, release: ReleaseTableWrite): void {
    if (release === WITHOUT_LEASE) return;
    if (this.#reserved.has(table)) {
      void release();
      return;
    }
    const expiry = setTimeout(() => {
      if (this.#reserved.get(table)?.release !== release) return;
      this.#reserved.delete(table);
      void release();
    }, this.#ttlMs);
    expiry.unref();
    this.#reserved.set(table, { release, expiry });
  }

  /** The lease kept by `deposit` for `table`, taken out (undefined when none). */
  withdraw(table: string): ReleaseTableWrite | undefined {
    const kept = this.#reserved.get(table);
    if (!kept) return undefined;
    clearTimeout(kept.expiry);
    this.#reserved.delete(table);
    return kept.release;
  }

  /** Whether this process holds `table`'s write lease now (for a write, or reserved for its next one). */
  holdsLocally(table: string): boolean {
    return (this.#local.get(table) ?? 0) > 0;
  }

  /**
   * One waiter for `table`'s lease under a token of its own, asked as often as its caller likes: each ask
   * is one statement that takes the lease or keeps this waiter's turn (by how long it has waited). `ask`
   * resolves with the release once the lease is held (kept renewed until then), undefined while another
   * holds it, and a release that does nothing when Postgres cannot be asked (the write goes ahead
   * without a lease: a throughput device, see the class).
   */
  asker(table: string, holdMs = 4 * this.#ttlMs): { ask: () => Promise<ReleaseTableWrite | undefined> } {
    const name = `write:${table}`;
    // A token per acquisition: two writes of one process never share (or release) each other's lease.
    const holder = `${this.#holder}:${randomUUID()}`;
    const started = performance.now();
    const ask = (): Promise<boolean> =>
      acquireLeaseInTurn(this.#db, {
        name,
        holder,
        ttlMs: this.#ttlMs,
        reserveMs: Math.max(1_000, this.#pollMs * 10),
        waitedMs: performance.now() - started,
      });
    return {
      ask: async () => {
        try {
          if (!(await ask())) return undefined;
        } catch (error) {
          this.#logger.warn(
            { table, err: errorMessage(error) },
            "could not ask for the table's write lease; writing without it",
          );
          return WITHOUT_LEASE;
        }
        const waitedMs = Math.round(performance.now() - started);
        if (waitedMs > 1_000) this.#logger.debug({ table, waitedMs }, "waited for the table's write lease");
        return this.#held(table, name, holder, ask, holdMs);
      },
    };
  }

  /** Keeps a lease just taken renewed (for holdMs at most) and counted as this process's, until released. */
  #held(
    table: string,
    name: string,
    holder: string,
    ask: () => Promise<boolean>,
    holdMs: number,
  ): ReleaseTableWrite {
    this.#local.set(table, (this.#local.get(table) ?? 0) + 1);
    let counted = true;
    // Once renewal gives up the lease lapses: this process no longer counts it as held.
    const uncount = (): void => {
      if (!counted) return;
      counted = false;
      const left = (this.#local.get(table) ?? 1) - 1;
      if (left > 0) this.#local.set(table, left);
      else this.#local.delete(table);
    };
    const heldSince = performance.now();
    const renewal = setInterval(
      () => {
        // The last renewal made before holdMs keeps the lease until about holdMs.
        if (performance.now() - heldSince + this.#ttlMs >= holdMs) {
          clearInterval(renewal);
          uncount();
          return;
        }
        ask().catch(() => undefined);
      },
      Math.max(50, Math.floor(this.#ttlMs / 3)),
    );
    renewal.unref();
    let released = false;
    return async () => {
      if (released) return;
      released = true;
      clearInterval(renewal);
      uncount();
      try {
        await releaseMaintenanceLease(this.#db, { name, holder });
      } catch (error) {
        this.#logger.warn({ table, err: errorMessage(error) }, "could not release the table's write lease");
      }
    };
  }
}
