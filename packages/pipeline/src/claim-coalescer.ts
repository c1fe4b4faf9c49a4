import type { ClaimedFile } from "@lakeferry/db";

type Ref = { id: number; version: number; ingestionId?: number };

interface Waiter {
  ref: Ref;
  resolve: (claim: ClaimedFile | undefined) => void;
  reject: (error: unknown) => void;
}

/**
 * Turns many jobs' claims into few round trips: claims asked for while a claim call is running are sent
 * together in the next call. Under load the calls grow; when idle a claim costs one round trip.
 */
export class ClaimCoalescer {
  readonly #claim: (refs: Ref[]) => Promise<ClaimedFile[]>;
  #waiting: Waiter[] = [];
  #running: Promise<void> | undefined;

  constructor(claim: (refs: Ref[]) => Promise<ClaimedFile[]>) {
    this.#claim = claim;
  }

  /** The claimed file, or undefined when it is not claimable (settled, another version, leased elsewhere). */
  claim(ref: Ref): Promise<ClaimedFile | undefined> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ ref, resolve, reject });
      this.#running ??= this.#drain();
    });
  }

  /** Resolves when no claim call is running. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #drain(): Promise<void> {
    // Let the jobs started in the same tick join the first call.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.#waiting.length > 0) {
      const waiters = this.#waiting;
      this.#waiting = [];
      const first = new Map<string, Waiter>();
      for (const waiter of waiters) {
        const key = refKey(waiter.ref);
        if (!first.has(key)) first.set(key, waiter);
      }
      try {
        const claimed = await this.#claim([...first.values()].map((waiter) => waiter.ref));
        const byKey = new Map(claimed.map((file) => [refKey(file), file]));
        for (const waiter of waiters) {
          const key = refKey(waiter.ref);
          // Only the first asker of a duplicate gets the claim.
          waiter.resolve(first.get(key) === waiter ? byKey.get(key) : undefined);
        }
      } catch (error) {
        for (const waiter of waiters) waiter.reject(error);
      }
    }
    this.#running = undefined;
  }
}

function refKey(ref: Ref): string {
  return `${ref.id}:${ref.version}`;
}
