import { errorMessage } from "@lakeferry/core";
import type { Logger } from "@lakeferry/core";

/**
 * Keeps the leases of the files this worker holds alive: one renewal round trip for all of them every
 * third of the lease. A file whose lease could not be renewed (it expired and someone else may have taken
 * it) is reported through `onLost`.
 */
export class LeaseKeeper {
  readonly #held = new Set<number>();
  readonly #renew: (fileIds: number[]) => Promise<number[]>;
  readonly #onLost: (fileIds: number[]) => void;
  readonly #logger: Logger;
  readonly #timer: NodeJS.Timeout;
  #renewing: Promise<void> | undefined;

  constructor(options: {
    renew: (fileIds: number[]) => Promise<number[]>;
    leaseMs: number;
    onLost: (fileIds: number[]) => void;
    logger: Logger;
  }) {
    this.#renew = options.renew;
    this.#onLost = options.onLost;
    this.#logger = options.logger;
    this.#timer = setInterval(
      () => {
        this.#renewing ??= this.#renewAll().finally(() => (this.#renewing = undefined));
      },
      Math.max(50, Math.floor(options.leaseMs / 3)),
    );
    this.#timer.unref();
  }

  hold(fileId: number): void {
    this.#held.add(fileId);
  }

  release(fileId: number): void {
    this.#held.delete(fileId);
  }

  get size(): number {
    return this.#held.size;
  }

  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#renewing;
  }

  async #renewAll(): Promise<void> {
    const ids = [...this.#held];
    if (ids.length === 0) return;
    let kept: number[];
    try {
      kept = await this.#renew(ids);
    } catch (err) {
      // Postgres unreachable: the leases run on; the next tick tries again.
      this.#logger.warn({ err: errorMessage(err), files: ids.length }, "lease renewal failed");
      return;
    }
    const still = new Set(kept);
    const lost = ids.filter((id) => !still.has(id) && this.#held.has(id));
    if (lost.length > 0) this.#onLost(lost);
  }
}
