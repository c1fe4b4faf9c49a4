import { errorMessage, InvalidInputError, outageOf, type Logger } from "@lakeferry/core";
import { createDatabase, getIngestionById, listIngestions, type Database } from "@lakeferry/db";
import {
  DiscoveryQueue,
  DiscoveryWorker,
  IngestQueue,
  MaintenanceQueue,
  MaintenanceWorker,
} from "@lakeferry/queue";
import { SparkConnectClient } from "@lakeferry/spark-connect";
import type { StoreOptions } from "@lakeferry/storage";
import { storedCleanSource } from "./clean-source-settings.ts";
import { discoverFiles } from "./discover-files.ts";
import { MAINTENANCE_TASKS, storedMaintenance } from "./maintenance-settings.ts";
import { SourceCleaner } from "./source-cleaner.ts";
import { StatePruner } from "./state-pruner.ts";
import { TableMaintainer } from "./table-maintenance.ts";
import { TableWriteLeases } from "./table-write-lease.ts";
import type { PipelineContext } from "./pipeline-context.ts";
import type { PipelineEvents } from "./pipeline-events.ts";

export interface DiscovererRuntimeOptions {
  /** Postgres connection string (`DATABASE_URL`). */
  databaseUrl: string;
  /** Redis URL (`REDIS_URL`). */
  redisUrl: string;
  /** BullMQ key prefix. Default the queue package's (`lakeferry`). */
  queuePrefix?: string;
  /** Postgres schema of lakeferry's tables. Default `public`. */
  dbSchema?: string;
  /** Postgres connections this process opens at most (`LAKEFERRY_PG_POOL_MAX`). Default 10. */
  dbPoolMax?: number;
  /** Discoveries this process runs at once. Default 2. */
  concurrency?: number;
  logger: Logger;
  /** Storage options per source URI. */
  storeOptions?: (uri: string) => StoreOptions;
  /**
   * How often the discovery schedules in Redis are checked against the ingestions and repaired (ms, each
   * delay spread by ±20 %): after a Redis flush they are back within this time. It is also the deadline
   * of one check. Default 30 000, the reconciler's interval.
   */
  scheduleCheckIntervalMs?: number;
  /** Where each discovery pass announces `discovery:finished`, for metrics. Default: nowhere. */
  events?: PipelineEvents;
  /**
   * Spark Connect URL (`SPARK_REMOTE`): when given, this discoverer also runs the maintenance jobs that the
   * ingestions' schedules fire, one at a time: table maintenance, and source cleanup (`cleanSource`, which
   * needs no Spark but shares the queue). Every discoverer keeps those schedules in line either way.
   * Default: none (maintenance jobs wait for a discoverer that has Spark).
   */
  sparkRemote?: string;
  /**
   * State retention on a schedule, for a discoverer with `sparkRemote`: every `everyMs` (0: never; default a
   * day) one discoverer of the fleet prunes state settled longer ago than `retentionMs` (default 90 days) to
   * `archiveTable` (default `lake.lakeferry.state_archive`); see StatePruner.
   */
  statePrune?: { retentionMs?: number; everyMs?: number; archiveTable?: string };
}

/** What a schedule sync changed, by ingestion id. */
export interface ScheduleSyncResult {
  /** Ingestions whose scheduler was missing or had another pattern, and was (re)created. */
  set: number[];
  /** Schedulers removed: their ingestion was deleted, disabled, or lost its `schedule`. */
  removed: number[];
}

/**
 * A discoverer process: brings the discovery schedules in line with the ingestions (cron job schedulers
 * in BullMQ) at start and then every `scheduleCheckIntervalMs`, and runs discovery jobs, scheduled or
 * requested. Any number may run: each firing goes to one, and the schedule checks are idempotent.
 *
 * The periodic check lives here rather than in the workers' reconciler because schedules are the
 * discoverer's own (only discoverers run what they fire, so without one they do not matter), it needs no
 * discovery queue in every worker, and comparing the two lists repairs any drift, not only a flush.
 */
export class DiscovererRuntime {
  readonly #options: DiscovererRuntimeOptions;
  #db: Database | undefined;
  #queue: IngestQueue | undefined;
  #discovery: DiscoveryQueue | undefined;
  #maintenance: MaintenanceQueue | undefined;
  #worker: DiscoveryWorker | undefined;
  #maintenanceWorker: MaintenanceWorker | undefined;
  #spark: SparkConnectClient | undefined;
  #pruner: StatePruner | undefined;
  #closing: Promise<void> | undefined;
  #scheduleTimer: NodeJS.Timeout | undefined;
  #scheduleCheck: Promise<void> | undefined;

  constructor(options: DiscovererRuntimeOptions) {
    this.#options = options;
  }

  /** Syncs the schedules of all ingestions and starts taking discovery jobs. */
  async start(): Promise<void> {
    const o = this.#options;
    const logger = o.logger;
    this.#db = createDatabase({
      connectionString: o.databaseUrl,
      ...(o.dbSchema ? { schema: o.dbSchema } : {}),
      maxConnections: o.dbPoolMax ?? 10,
    });
    const connection = { redisUrl: o.redisUrl, ...(o.queuePrefix ? { prefix: o.queuePrefix } : {}) };
    this.#queue = new IngestQueue(connection);
    this.#discovery = new DiscoveryQueue(connection);
    this.#maintenance = new MaintenanceQueue(connection);
    const ctx: PipelineContext = {
      db: this.#db,
      queue: this.#queue,
      logger,
      ...(o.storeOptions ? { storeOptions: o.storeOptions } : {}),
      ...(o.events ? { events: o.events } : {}),
    };
    // Postgres or Redis down at start: the periodic check syncs the schedules once they answer, instead of
    // the process exiting (and a supervisor restarting it in a loop).
    await this.syncSchedules().catch((err: unknown) => {
      if (outageOf(err) === undefined) throw err;
      logger.warn(
        { err: errorMessage(err) },
        "could not sync the discovery schedules yet; trying again later",
      );
    });
    const db = this.#db;
    this.#worker = new DiscoveryWorker({
      ...connection,
      concurrency: o.concurrency ?? 2,
      process: async (data, job) => {
        // Read fresh: the cursor and settings may have changed since the job was scheduled.
        const ingestion = await getIngestionById(db, data.ingestionId);
        if (!ingestion) {
          logger.warn({ ingestionId: data.ingestionId }, "discovery for an ingestion that no longer exists");
          await this.#discovery?.setSchedule(data.ingestionId, null);
          return;
        }
        if (!ingestion.enabled && data.trigger === "schedule") return;
        await discoverFiles(ctx, ingestion, { trigger: data.trigger, signal: job.signal });
      },
      onError: (err) => logger.warn({ err: errorMessage(err) }, "discovery worker error"),
    });
    await this.#worker.start();
    if (o.sparkRemote !== undefined) await this.#startMaintenance(o.sparkRemote, connection);
    this.#scheduleNextCheck();
    logger.info({}, "discoverer started");
  }

  /**
   * Brings the discovery schedulers in Redis in line with the ingestions: (re)creates the missing or
   * different ones of enabled ingestions with a `schedule`, removes the others. Writes only what differs.
   * An ingestion edited while a sync runs may have its schedule written back as read a moment before;
   * the next periodic sync puts it right.
   */
  async syncSchedules(): Promise<ScheduleSyncResult> {
    const db = this.#db;
    const discovery = this.#discovery;
    if (!db || !discovery) throw new Error("the discoverer is not started");
    // Maintenance schedules never hold discovery's back: a failure there is logged and retried next sync.
    const maintenance = this.syncMaintenanceSchedules().catch((err: unknown) => {
      this.#options.logger.warn({ err: errorMessage(err) }, "maintenance schedule sync failed");
    });
    // Schedulers first, ingestions second: one created by an ingestion apply meanwhile is either not in
    // our list (so not removed) or its ingestion is in ours (so it is kept).
    const current = new Map((await discovery.schedules()).map((s) => [s.ingestionId, s.cron]));
    const ingestions = await listIngestions(db);
    const result: ScheduleSyncResult = { set: [], removed: [] };
    const wanted = new Set<number>();
    for (const ingestion of ingestions) {
      const cron = ingestion.enabled ? ingestion.schedule : null;
      if (cron === null) continue;
      wanted.add(ingestion.id);
      if (current.get(ingestion.id) === cron) continue;
      try {
        await discovery.setSchedule(ingestion.id, cron);
        result.set.push(ingestion.id);
      } catch (err) {
        if (!(err instanceof InvalidInputError)) throw err;
        // One bad pattern must not keep the other ingestions unscheduled.
        this.#options.logger.warn(
          { ingestion: ingestion.name, ingestionId: ingestion.id, err: errorMessage(err) },
          "ingestion schedule refused",
        );
      }
    }
    for (const ingestionId of current.keys()) {
      if (wanted.has(ingestionId)) continue;
      await discovery.setSchedule(ingestionId, null);
      result.removed.push(ingestionId);
    }
    await maintenance;
    return result;
  }

  /**
   * Brings the maintenance schedulers in Redis in line with the ingestions' maintenance and `cleanSource`
   * settings: one per enabled ingestion and task that is on, none for the rest. Writes only what differs.
   * @returns the schedulers set and removed, as `ingestionId:task`.
   */
  async syncMaintenanceSchedules(): Promise<{ set: string[]; removed: string[] }> {
    const db = this.#db;
    const queue = this.#maintenance;
    if (!db || !queue) throw new Error("the discoverer is not started");
    const key = (ingestionId: number, task: string): string => `${ingestionId}:${task}`;
    const current = new Map((await queue.schedules()).map((s) => [key(s.ingestionId, s.task), s]));
    const result = { set: [] as string[], removed: [] as string[] };
    for (const ingestion of await listIngestions(db)) {
      const settings = storedMaintenance(ingestion.maintenance, ingestion);
      const cleanup = storedCleanSource(ingestion.cleanSource);
      for (const task of [...MAINTENANCE_TASKS, "cleanSource" as const]) {
        const wanted = task === "cleanSource" ? (cleanup?.schedule ?? null) : settings[task].schedule;
        const cron = ingestion.enabled ? wanted : null;
        const name = key(ingestion.id, task);
        const existing = current.get(name);
        current.delete(name);
        if (existing?.cron === (cron ?? undefined)) continue;
        try {
          await queue.setSchedule(ingestion.id, task, cron);
          result[cron === null ? "removed" : "set"].push(name);
        } catch (err) {
          if (!(err instanceof InvalidInputError)) throw err;
          // One bad pattern must not keep the other tasks and ingestions unscheduled.
          this.#options.logger.warn(
            { ingestion: ingestion.name, ingestionId: ingestion.id, task, err: errorMessage(err) },
            "maintenance schedule refused",
          );
        }
      }
    }
    // Left over: schedulers of ingestions that are gone (one created since the listing is set again by the
    // next sync).
    for (const [name, schedule] of current) {
      await queue.setSchedule(schedule.ingestionId, schedule.task, null);
      result.removed.push(name);
    }
    return result;
  }

  /**
   * Runs maintenance jobs in this process: one at a time, each holding its table's write lease; and state
   * retention on its schedule (see `statePrune`).
   */
  async #startMaintenance(
    sparkRemote: string,
    connection: { redisUrl: string; prefix?: string },
  ): Promise<void> {
    const db = this.#db;
    if (!db) throw new Error("the discoverer is not started");
    const logger = this.#options.logger;
    this.#spark = new SparkConnectClient({ remote: sparkRemote, clientType: "lakeferry-maintenance" });
    // A longer lease than a batch write's: compaction of a large table takes minutes; a maintainer that dies
    // frees the table after a minute.
    const leases = new TableWriteLeases({ db, holder: `maintainer-${process.pid}`, logger, ttlMs: 60_000 });
    const maintainer = new TableMaintainer({ db, spark: this.#spark, leases, logger });
    const cleaner = new SourceCleaner({
      db,
      logger,
      ...(this.#options.storeOptions ? { storeOptions: this.#options.storeOptions } : {}),
    });
    this.#maintenanceWorker = new MaintenanceWorker({
      ...connection,
      concurrency: 1,
      process: async (data, job) => {
        const ingestion = await getIngestionById(db, data.ingestionId);
        if (!ingestion) {
          logger.warn(
            { ingestionId: data.ingestionId },
            "maintenance for an ingestion that no longer exists",
          );
          await this.#maintenance?.setSchedule(data.ingestionId, data.task, null);
          return;
        }
        if (!ingestion.enabled && data.trigger === "schedule") return;
        if (data.task === "cleanSource") await cleaner.run(ingestion, job.signal);
        else await maintainer.run(ingestion, data.task, job.signal);
      },
      onError: (err) => logger.warn({ err: errorMessage(err) }, "maintenance worker error"),
    });
    await this.#maintenanceWorker.start();
    const prune = this.#options.statePrune ?? {};
    const everyMs = prune.everyMs ?? 86_400_000;
    if (everyMs > 0) {
      this.#pruner = new StatePruner({
        db,
        spark: this.#spark,
        logger,
        ...(prune.retentionMs === undefined ? {} : { retentionMs: prune.retentionMs }),
        ...(prune.archiveTable === undefined ? {} : { archiveTable: prune.archiveTable }),
      });
      this.#pruner.start({ everyMs });
    }
  }

  #scheduleNextCheck(): void {
    const intervalMs = this.#options.scheduleCheckIntervalMs ?? 30_000;
    const delay = Math.round(intervalMs * (0.8 + 0.4 * Math.random()));
    this.#scheduleTimer = setTimeout(() => {
      this.#scheduleCheck = this.#checkSchedules(intervalMs).finally(() => {
        this.#scheduleCheck = undefined;
        if (!this.#closing) this.#scheduleNextCheck();
      });
    }, delay);
    this.#scheduleTimer.unref();
  }

  /** One periodic sync under a deadline: a hung Redis or Postgres call fails it; the next one retries. */
  async #checkSchedules(deadlineMs: number): Promise<void> {
    const logger = this.#options.logger;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${deadlineMs} ms`)), deadlineMs);
    });
    const sync = this.syncSchedules();
    sync.catch(() => {});
    try {
      const { set, removed } = await Promise.race([sync, deadline]);
      if (set.length + removed.length > 0) {
        logger.info({ set, removed }, "discovery schedules repaired");
      }
    } catch (err) {
      logger.warn({ err: errorMessage(err) }, "discovery schedule check failed");
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops taking jobs, waits for running discoveries up to `timeoutMs` (default 30 000), closes connections. */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= (async () => {
      clearTimeout(this.#scheduleTimer);
      await this.#scheduleCheck;
      // Together, so that all finish within one grace period (a prune stops at its next window).
      await Promise.all([
        this.#worker?.close({ timeoutMs: options.timeoutMs ?? 30_000 }),
        this.#maintenanceWorker?.close({ timeoutMs: options.timeoutMs ?? 30_000 }),
        this.#pruner?.close(),
      ]);
      await this.#maintenance?.close().catch(() => {});
      await this.#spark?.close().catch(() => {});
      await this.#discovery?.close().catch(() => {});
      await this.#queue?.close().catch(() => {});
      await this.#db?.close().catch(() => {});
    })();
    return this.#closing;
  }
}
