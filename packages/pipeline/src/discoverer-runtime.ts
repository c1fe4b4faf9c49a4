import { errorMessage, type Logger } from "@lakeferry/core";
import { createDatabase, getIngestionById, listIngestions, type Database } from "@lakeferry/db";
import { DiscoveryQueue, DiscoveryWorker, IngestQueue } from "@lakeferry/queue";
import type { StoreOptions } from "@lakeferry/storage";
import { discoverFiles } from "./discover-files.ts";
import type { PipelineContext } from "./pipeline-context.ts";

export interface DiscovererRuntimeOptions {
  /** Postgres connection string (`DATABASE_URL`). */
  databaseUrl: string;
  /** Redis URL (`REDIS_URL`). */
  redisUrl: string;
  /** BullMQ key prefix. Default the queue package's (`lakeferry`). */
  queuePrefix?: string;
  /** Postgres schema of lakeferry's tables. Default `public`. */
  dbSchema?: string;
  /** Discoveries this process runs at once. Default 2. */
  concurrency?: number;
  logger: Logger;
  /** Storage options per source URI. */
  storeOptions?: (uri: string) => StoreOptions;
}

/**
 * A discoverer process: brings the discovery schedules in line with the ingestions (cron job schedulers
 * in BullMQ), then runs discovery jobs, scheduled or requested. Any number may run: each firing goes to one.
 */
export class DiscovererRuntime {
  readonly #options: DiscovererRuntimeOptions;
  #db: Database | undefined;
  #queue: IngestQueue | undefined;
  #discovery: DiscoveryQueue | undefined;
  #worker: DiscoveryWorker | undefined;
  #closing: Promise<void> | undefined;

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
    });
    const connection = { redisUrl: o.redisUrl, ...(o.queuePrefix ? { prefix: o.queuePrefix } : {}) };
    this.#queue = new IngestQueue(connection);
    this.#discovery = new DiscoveryQueue(connection);
    const ctx: PipelineContext = {
      db: this.#db,
      queue: this.#queue,
      logger,
      ...(o.storeOptions ? { storeOptions: o.storeOptions } : {}),
    };
    await this.syncSchedules();
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
    logger.info({}, "discoverer started");
  }

  /** Sets each ingestion's discovery schedule (none when disabled) and removes schedules of deleted ones. */
  async syncSchedules(): Promise<void> {
    const db = this.#db;
    const discovery = this.#discovery;
    if (!db || !discovery) throw new Error("the discoverer is not started");
    const ingestions = await listIngestions(db);
    const known = new Set<number>();
    for (const ingestion of ingestions) {
      known.add(ingestion.id);
      await discovery.setSchedule(ingestion.id, ingestion.enabled ? ingestion.schedule : null);
    }
    for (const schedule of await discovery.schedules()) {
      if (!known.has(schedule.ingestionId)) await discovery.setSchedule(schedule.ingestionId, null);
    }
  }

  /** Stops taking jobs, waits for running discoveries up to `timeoutMs` (default 30 000), closes connections. */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= (async () => {
      await this.#worker?.close({ timeoutMs: options.timeoutMs ?? 30_000 });
      await this.#discovery?.close().catch(() => {});
      await this.#queue?.close().catch(() => {});
      await this.#db?.close().catch(() => {});
    })();
    return this.#closing;
  }
}
