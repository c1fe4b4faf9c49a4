import { setTimeout as sleep } from "node:timers/promises";
import { errorMessage, type Logger } from "@lakeferry/core";
import { acquireLeaseInTurn, releaseMaintenanceLease, type Database } from "@lakeferry/db";

export interface TableWriteLeasesOptions {
  db: Database;
  /** This process (the worker id). */
  holder: string;
  logger: Logger;
  /**
   * How long a lease holds at most. It is not renewed: a write that takes longer (a huge batch, a stuck
   * Spark call, a paused process) lets the next writer of the table start rather than block it. Default
   * 15 s.
   */
  ttlMs?: number;
  /** How often a waiter asks again. Default 100 ms (with jitter). */
  pollMs?: number;
}

/** Gives the lease back at once; never throws (an unreleased lease lapses after its ttl). */
export type ReleaseTableWrite = () => Promise<void>;

/**
 * One write in flight per Iceberg table across the whole fleet: before a batch is written its worker takes
 * the table's lease (`write:<table>` in Postgres), waiting in turn behind the workers that have waited
 * longer. Workers add claiming capacity without adding Spark jobs and commits that compete for one table,
 * and the batches that wait meanwhile grow (see GroupCommitBatcher). A throughput device, not a safety
 * one: the commit fence keeps writes exactly once whatever happens to a lease, so a lease that lapses while
 * held (after `ttlMs`) only lets a second write start.
 */
export class TableWriteLeases {
  readonly #db: Database;
  readonly #holder: string;
  readonly #logger: Logger;
  readonly #ttlMs: number;
  readonly #pollMs: number;

  constructor(options: TableWriteLeasesOptions) {
    this.#db = options.db;
    this.#holder = options.holder;
    this.#logger = options.logger;
    this.#ttlMs = options.ttlMs ?? 15_000;
    this.#pollMs = options.pollMs ?? 100;
  }

  /**
   * Waits until this process holds `table`'s write lease (for at most ttlMs from then).
   * @throws the abort reason when `signal` aborts first, or the database error that stopped the wait.
   */
  async acquire(table: string, signal: AbortSignal): Promise<ReleaseTableWrite> {
    const name = `write:${table}`;
    const waitingSince = new Date();
    const lease = { name, holder: this.#holder, ttlMs: this.#ttlMs };
    for (;;) {
      signal.throwIfAborted();
      if (await acquireLeaseInTurn(this.#db, { ...lease, reserveMs: this.#pollMs * 5, waitingSince })) break;
      const jitter = 0.5 + Math.random();
      try {
        await sleep(Math.round(this.#pollMs * jitter), undefined, { signal });
      } catch (error) {
        throw signal.aborted ? signal.reason : error;
      }
    }
    const waitedMs = Date.now() - waitingSince.getTime();
    if (waitedMs > 1_000) this.#logger.debug({ table, waitedMs }, "waited for the table's write lease");
    return async () => {
      try {
        await releaseMaintenanceLease(this.#db, { name, holder: this.#holder });
      } catch (error) {
        this.#logger.warn({ table, err: errorMessage(error) }, "could not release the table's write lease");
      }
    };
  }
}
