import { getIngestionById, type Database, type Ingestion } from "@lakeferry/db";

/**
 * Ingestions by id, read from Postgres at most once per `ttlMs` each: workers look one up for every job,
 * and an edited ingestion takes effect within `ttlMs`.
 */
export class IngestionCache {
  readonly #db: Database;
  readonly #ttlMs: number;
  readonly #entries = new Map<number, { at: number; value: Promise<Ingestion | undefined> }>();

  constructor(db: Database, ttlMs = 5_000) {
    this.#db = db;
    this.#ttlMs = ttlMs;
  }

  /** The ingestion, or undefined when it does not exist (any more). */
  get(id: number): Promise<Ingestion | undefined> {
    const entry = this.#entries.get(id);
    if (entry && Date.now() - entry.at < this.#ttlMs) return entry.value;
    return this.fresh(id);
  }

  /** The ingestion read now (and kept for the next `get`s), for a decision that must not use old settings. */
  fresh(id: number): Promise<Ingestion | undefined> {
    const now = Date.now();
    const value = getIngestionById(this.#db, id);
    this.#entries.set(id, { at: now, value });
    // A failed read is not remembered.
    value.catch(() => {
      if (this.#entries.get(id)?.value === value) this.#entries.delete(id);
    });
    return value;
  }
}
