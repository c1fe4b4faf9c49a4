import { errorMessage } from "@lakeferry/core";
import type { Database } from "@lakeferry/db";
import type { SparkConnectClient } from "@lakeferry/spark-connect";
import { FAULT_KINDS, type FaultKind } from "./chaos-options.ts";
import { sleep, type ChaosStack } from "./chaos-stack.ts";
import type { PlannedFault } from "./fault-plan.ts";
import type { Fleet, Slot } from "./fleet.ts";

export interface FaultInjectorOptions {
  stack: ChaosStack;
  fleet: Fleet;
  /** The driver's own Spark session (straight to the server) for snapshot expiry. */
  spark: SparkConnectClient;
  /** The driver's own Postgres pool (straight to the server), to see when batches are open. */
  db: Database;
  /** `lake.<ns>.t`. */
  table: string;
  log: (line: string) => void;
}

/** What was injected, by kind: done, skipped (no target at that moment) or failed (with why). */
export interface FaultTally {
  injected: Record<FaultKind, number>;
  skipped: Record<FaultKind, number>;
  failed: Record<FaultKind, number>;
  errors: string[];
}

/**
 * Runs a fault schedule against the fleet and the stack. Faults on one resource (a worker slot, a proxy's
 * latency or blackhole switch, a restarting server) wait for each other; everything else overlaps freely.
 */
export class FaultInjector {
  readonly tally: FaultTally = {
    injected: zeroes(),
    skipped: zeroes(),
    failed: zeroes(),
    errors: [],
  };
  readonly #o: FaultInjectorOptions;
  readonly #locks = new KeyedLocks();
  #windowStart = 0;

  constructor(options: FaultInjectorOptions) {
    this.#o = options;
  }

  /** Fires each fault at its moment after now; resolves once every one has ended. */
  async run(plan: readonly PlannedFault[]): Promise<void> {
    this.#windowStart = Date.now();
    const running: Promise<void>[] = [];
    for (const fault of plan) {
      const wait = this.#windowStart + fault.atMs - Date.now();
      if (wait > 0) await sleep(wait);
      running.push(this.#inject(fault));
    }
    await Promise.all(running);
  }

  async #inject(fault: PlannedFault): Promise<void> {
    try {
      const done = await this.#apply(fault);
      if (done) this.tally.injected[fault.kind] += 1;
      else this.tally.skipped[fault.kind] += 1;
    } catch (error) {
      this.tally.failed[fault.kind] += 1;
      const line = `${fault.kind} failed: ${errorMessage(error)}`;
      this.tally.errors.push(line);
      this.#log(line);
    }
  }

  /** Injects one fault; false when it had no target (its process was not running). */
  async #apply(f: PlannedFault): Promise<boolean> {
    const { stack, fleet } = this.#o;
    const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;
    switch (f.kind) {
      case "kill-worker":
      case "kill-discoverer": {
        const slot = f.kind === "kill-worker" ? this.#worker(f.worker) : fleet.discoverer;
        return this.#locks.with([`slot:${slot.label}`], async () => {
          const victim = await fleet.kill(slot);
          if (!victim) return false;
          this.#log(
            `${f.kind}: SIGKILL ${victim.name} (pid ${victim.pid}); a new one in ${seconds(f.durationMs)}`,
          );
          await sleep(f.durationMs);
          fleet.spawn(slot);
          return true;
        });
      }
      case "pause-worker": {
        const slot = this.#worker(f.worker);
        return this.#locks.with([`slot:${slot.label}`], async () => {
          const victim = fleet.pause(slot);
          if (!victim) return false;
          this.#log(`pause-worker: SIGSTOP ${victim.name} (pid ${victim.pid}) for ${seconds(f.durationMs)}`);
          await sleep(f.durationMs);
          fleet.resume(victim);
          this.#log(`pause-worker: SIGCONT ${victim.name}`);
          return true;
        });
      }
      case "spark-cut":
      case "pg-cut": {
        const proxy = f.kind === "spark-cut" ? stack.sparkProxy : stack.pgProxy;
        this.#log(`${f.kind}: reset ${proxy.resetAll()} connections`);
        return true;
      }
      case "spark-latency":
      case "pg-latency": {
        const proxy = f.kind === "spark-latency" ? stack.sparkProxy : stack.pgProxy;
        return this.#locks.with([`proxy:${f.kind}`], async () => {
          this.#log(`${f.kind}: ${f.latencyMs} ± ${f.jitterMs} ms each way for ${seconds(f.durationMs)}`);
          proxy.setLatency(f.latencyMs, f.jitterMs);
          await sleep(f.durationMs);
          proxy.setLatency(0);
          return true;
        });
      }
      case "spark-blackhole":
      case "pg-blackhole": {
        const proxy = f.kind === "spark-blackhole" ? stack.sparkProxy : stack.pgProxy;
        return this.#locks.with([`proxy:${f.kind}`], async () => {
          this.#log(`${f.kind}: on for ${seconds(f.durationMs)} (${proxy.stats().open} connections held)`);
          proxy.blackhole(true);
          await sleep(f.durationMs);
          proxy.blackhole(false);
          this.#log(`${f.kind}: off`);
          return true;
        });
      }
      case "spark-restart":
        return this.#locks.with(["restart", "spark-server"], async () => {
          this.#log(`spark-restart: SIGKILL of the Spark JVM, down ${seconds(f.durationMs)}, then a start`);
          const started = Date.now();
          await stack.restartSpark(f.durationMs);
          this.#log(`spark-restart: Spark answers again after ${seconds(Date.now() - started)}`);
          return true;
        });
      case "pg-restart":
        return this.#locks.with(["restart", "pg-server"], async () => {
          this.#log(`pg-restart: Postgres fast shutdown, down ${seconds(f.durationMs)}, then a start`);
          const started = Date.now();
          await stack.restartPostgres(f.durationMs);
          this.#log(`pg-restart: Postgres answers again after ${seconds(Date.now() - started)}`);
          return true;
        });
      case "redis-flush":
        await stack.flushRedis();
        this.#log("redis-flush: FLUSHALL on the chaos Redis");
        return true;
      case "expire-snapshots":
        return this.#locks.with(["spark-server"], () => this.#expireSnapshots());
    }
  }

  /**
   * Waits (up to 30 s) for a batch to be OPEN or PUBLISHING, then expires every snapshot but the current
   * one: staged snapshots of open batches go with them. Retries for up to four minutes (Spark or the
   * catalog may be down or busy recovering, the table may not exist yet, a commit may conflict).
   */
  async #expireSnapshots(): Promise<boolean> {
    const { db, spark, table } = this.#o;
    const dot = table.indexOf(".");
    const identifier = table.slice(dot + 1);
    const catalog = table.slice(0, dot);
    let open = { open: 0, publishing: 0 };
    const waitUntil = Date.now() + 30_000;
    while (Date.now() < waitUntil) {
      open = await openBatches(db).catch(() => open);
      if (open.open + open.publishing > 0) break;
      await sleep(200);
    }
    const deadline = Date.now() + 240_000;
    for (let attempt = 1; ; attempt++) {
      const now = new Date().toISOString().replace("T", " ").replace("Z", "");
      try {
        const [result] = await spark.sqlCommand(
          `CALL ${catalog}.system.expire_snapshots(table => '${identifier}', older_than => TIMESTAMP '${now}', retain_last => 1)`,
          undefined,
          { deadlineMs: 60_000 },
        );
        this.#log(
          `expire-snapshots: with ${open.open} OPEN and ${open.publishing} PUBLISHING batches; ${JSON.stringify(result ?? {})}`,
        );
        return true;
      } catch (error) {
        if (Date.now() > deadline) throw error;
        this.#log(
          `expire-snapshots: attempt ${attempt} failed (${errorMessage(error).slice(0, 160)}); again`,
        );
        await sleep(2_000);
      }
    }
  }

  /** The worker slot `index`, or the next one whose process is running and not paused. */
  #worker(index: number): Slot {
    const workers = this.#o.fleet.workers;
    for (let n = 0; n < workers.length; n++) {
      const slot = workers[(index + n) % workers.length] as Slot;
      if (slot.process?.running && !slot.process.paused) return slot;
    }
    return workers[index % workers.length] as Slot;
  }

  #log(line: string): void {
    this.#o.log(`+${((Date.now() - this.#windowStart) / 1000).toFixed(1).padStart(6)} s  ${line}`);
  }
}

async function openBatches(db: Database): Promise<{ open: number; publishing: number }> {
  const { rows } = await db.pool.query<{ open: number; publishing: number }>(
    "SELECT (count(*) FILTER (WHERE state = 'OPEN'))::int AS open, " +
      "(count(*) FILTER (WHERE state = 'PUBLISHING'))::int AS publishing FROM write_batches",
  );
  return rows[0] ?? { open: 0, publishing: 0 };
}

function zeroes(): Record<FaultKind, number> {
  return Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>;
}

/** Mutual exclusion per key; several keys are taken in sorted order, so two holders never deadlock. */
class KeyedLocks {
  readonly #tails = new Map<string, Promise<void>>();

  async with<T>(keys: string[], run: () => Promise<T>): Promise<T> {
    const releases: (() => void)[] = [];
    for (const key of [...new Set(keys)].sort()) {
      const previous = this.#tails.get(key) ?? Promise.resolve();
      let release!: () => void;
      const mine = new Promise<void>((resolve) => (release = resolve));
      this.#tails.set(
        key,
        previous.then(() => mine),
      );
      await previous;
      releases.push(release);
    }
    try {
      return await run();
    } finally {
      for (const release of releases) release();
    }
  }
}
