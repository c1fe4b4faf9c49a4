import { errorMessage, type Logger } from "@lakeferry/core";
import { fileStatusTotals, type Database, type FileStatusTotal } from "@lakeferry/db";
import { queueStats, type AllQueues, type QueueStats } from "@lakeferry/queue";
import { Counter, Gauge, type Registry } from "prom-client";

export interface BacklogMetricsOptions {
  /** The queues whose backlog is reported. */
  queues: AllQueues;
  /** The database whose files are counted. */
  db: Database;
  /**
   * Whether to register `lakeferry_files`. Its count reads every file row, so the fleet serves it from one
   * place (the API; a worker's or discoverer's metrics leave it out unless told). Default true.
   */
  files?: boolean;
  /**
   * How long one count of files by status is served before Postgres is asked again, in ms: scrapes from
   * several Prometheus servers, or more often than this, cost one count. Default 15 000.
   */
  filesMaxAgeMs?: number;
  /** How long one read of Redis or Postgres may take at scrape time, in ms. Default 5 000. */
  timeoutMs?: number;
  /** Where a failed read is logged. Default: not logged (it is counted). */
  logger?: Logger;
}

/**
 * Registers gauges read at scrape time (each scrape asks Redis and Postgres once; every process that
 * serves them reports the same fleet-wide figures, so aggregate them with `max`, not `sum`):
 *
 * - `lakeferry_queue_jobs{queue,state}`: jobs `waiting`, `delayed`, `active` per queue;
 * - `lakeferry_queue_oldest_waiting_seconds{queue}`: age of the oldest waiting job (0 when none waits);
 * - `lakeferry_files{ingestion,status}`: files by ingestion and status (one grouped query, at most one per
 *   `filesMaxAgeMs`; see {@link BacklogMetricsOptions.files});
 * - `lakeferry_metrics_read_errors_total{source}`: reads that failed or timed out (`queues`, `files`); the
 *   gauges of a failed read are left empty for that scrape rather than stale.
 */
export function registerBacklogMetrics(registry: Registry, options: BacklogMetricsOptions): void {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const registers = [registry];
  const failures = new Map<string, number>();
  const inFlight = new Set<Promise<unknown>>();
  const read = <T>(source: string, work: () => Promise<T>): Promise<T | undefined> => {
    const reading = withDeadline(work(), timeoutMs).catch((error: unknown) => {
      failures.set(source, (failures.get(source) ?? 0) + 1);
      options.logger?.warn({ source, err: errorMessage(error) }, "metrics read failed");
      return undefined;
    });
    inFlight.add(reading);
    void reading.finally(() => inFlight.delete(reading));
    return reading;
  };
  // Both queue gauges are collected at once in a scrape: they share one read of the queues.
  let pending: Promise<QueueStats[] | undefined> | undefined;
  const readQueues = (): Promise<QueueStats[] | undefined> => {
    pending ??= read("queues", () => queueStats(options.queues)).finally(() => {
      pending = undefined;
    });
    return pending;
  };
  new Gauge({
    name: "lakeferry_queue_jobs",
    help: "Jobs per queue in state waiting, delayed or active.",
    labelNames: ["queue", "state"] as const,
    registers,
    async collect() {
      this.reset();
      for (const stats of (await readQueues()) ?? []) {
        this.set({ queue: stats.queue, state: "waiting" }, stats.waiting);
        this.set({ queue: stats.queue, state: "delayed" }, stats.delayed);
        this.set({ queue: stats.queue, state: "active" }, stats.active);
      }
    },
  });
  new Gauge({
    name: "lakeferry_queue_oldest_waiting_seconds",
    help: "Age of the oldest waiting job per queue, in seconds (0 when none waits).",
    labelNames: ["queue"] as const,
    registers,
    async collect() {
      this.reset();
      for (const stats of (await readQueues()) ?? []) {
        this.set({ queue: stats.queue }, stats.oldestWaitingSeconds);
      }
    },
  });
  if (options.files ?? true) {
    const readFiles = cachedRead(options.filesMaxAgeMs ?? 15_000, () =>
      read("files", () => fileStatusTotals(options.db)),
    );
    new Gauge({
      name: "lakeferry_files",
      help: "Files by ingestion and status (PENDING, PROCESSING, SUCCESS, FAILED, SKIPPED).",
      labelNames: ["ingestion", "status"] as const,
      registers,
      async collect() {
        this.reset();
        for (const total of (await readFiles()) ?? []) {
          this.set({ ingestion: total.ingestion, status: total.status }, total.files);
        }
      },
    });
  }
  // Registered last, so that a scrape collects it after the reads above started: it counts their failures.
  new Counter({
    name: "lakeferry_metrics_read_errors_total",
    help: "Scrape-time reads of Redis (queues) or Postgres (files) that failed or timed out.",
    labelNames: ["source"] as const,
    registers,
    async collect() {
      await Promise.allSettled([...inFlight]);
      this.reset();
      for (const [source, count] of failures) this.inc({ source }, count);
    },
  });
}

/**
 * `read` shared by concurrent callers, its answer kept for `maxAgeMs` from when the read began; a failed read
 * (undefined) is not kept, so the next scrape asks again.
 */
function cachedRead(
  maxAgeMs: number,
  read: () => Promise<FileStatusTotal[] | undefined>,
): () => Promise<FileStatusTotal[] | undefined> {
  let kept: { at: number; totals: FileStatusTotal[] } | undefined;
  let pending: Promise<FileStatusTotal[] | undefined> | undefined;
  return () => {
    if (kept !== undefined && performance.now() - kept.at < maxAgeMs) return Promise.resolve(kept.totals);
    if (pending === undefined) {
      const at = performance.now();
      pending = read()
        .then((totals) => {
          if (totals !== undefined) kept = { at, totals };
          return totals;
        })
        .finally(() => {
          pending = undefined;
        });
    }
    return pending;
  };
}

async function withDeadline<T>(work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  work.catch(() => {});
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
