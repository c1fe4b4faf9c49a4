import type { ClaimedFile } from "@lakeferry/db";

interface Waiter<Req, Res> {
  request: Req;
  resolve: (result: Res) => void;
  reject: (error: unknown) => void;
}

/**
 * Turns many callers' requests into few round trips: requests made while a call is running are sent
 * together in the next call. Under load the calls grow; when idle a request costs one round trip.
 */
export class Coalescer<Req, Res> {
  /** Answers a call's requests, one result per request, in order. */
  readonly #run: (requests: Req[]) => Promise<Res[]>;
  #waiting: Waiter<Req, Res>[] = [];
  #running: Promise<void> | undefined;

  constructor(run: (requests: Req[]) => Promise<Res[]>) {
    this.#run = run;
  }

  ask(request: Req): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ request, resolve, reject });
      this.#running ??= this.#drain();
    });
  }

  /** Resolves when no call is running. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  async #drain(): Promise<void> {
    // Let the requests made in the same tick join the first call.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.#waiting.length > 0) {
      const waiters = this.#waiting;
      this.#waiting = [];
      try {
        const results = await this.#run(waiters.map((waiter) => waiter.request));
        waiters.forEach((waiter, index) => waiter.resolve(results[index] as Res));
      } catch (error) {
        for (const waiter of waiters) waiter.reject(error);
      }
    }
    this.#running = undefined;
  }
}

type Ref = { id: number; version: number; ingestionId?: number };

/**
 * Claims of concurrent jobs in few round trips (see {@link Coalescer}). A file version asked for twice in one
 * call is claimed once: only the first asker gets it.
 */
export class ClaimCoalescer {
  readonly #coalescer: Coalescer<Ref, ClaimedFile | undefined>;

  constructor(claim: (refs: Ref[]) => Promise<ClaimedFile[]>) {
    this.#coalescer = new Coalescer(async (refs) => {
      const first = new Map<string, number>();
      refs.forEach((ref, index) => {
        if (!first.has(refKey(ref))) first.set(refKey(ref), index);
      });
      const claimed = await claim([...first.values()].map((index) => refs[index] as Ref));
      const byKey = new Map(claimed.map((file) => [refKey(file), file]));
      return refs.map((ref, index) =>
        first.get(refKey(ref)) === index ? byKey.get(refKey(ref)) : undefined,
      );
    });
  }

  /** The claimed file, or undefined when it is not claimable (settled, another version, leased elsewhere). */
  claim(ref: Ref): Promise<ClaimedFile | undefined> {
    return this.#coalescer.ask(ref);
  }

  /** Resolves when no claim call is running. */
  idle(): Promise<void> {
    return this.#coalescer.idle();
  }
}

function refKey(ref: Ref): string {
  return `${ref.id}:${ref.version}`;
}
