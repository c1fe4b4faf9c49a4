import { errorMessage, type Logger } from "@lakeferry/core";
import { createDatabase, type Database } from "@lakeferry/db";
import { IcebergWriter, IcebergWriterPool, SparkSessionCodecs } from "@lakeferry/iceberg";
import {
  INGEST_QUEUE,
  IngestQueue,
  IngestWorker,
  SUBMIT_QUEUE,
  SubmitWorker,
  type SubmitWorkerOptions,
} from "@lakeferry/queue";
import { SparkConnectClient } from "@lakeferry/spark-connect";
import type { StoreOptions } from "@lakeferry/storage";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { accessPolicyFrom } from "./access-policy.ts";
import { FileIngestor, type FaultInjection } from "./file-ingestor.ts";
import { DEFAULT_BATCH_LIMITS, type BatchLimits } from "./group-commit-batcher.ts";
import type { PipelineEvents } from "./pipeline-events.ts";
import { Reconciler } from "./reconciler.ts";
import { submitFiles } from "./submit-files.ts";

/** Refused paths a submit job's return value names (all of them are in `run_refusals`). */
const FIRST_REFUSED = 100;

export interface WorkerRuntimeOptions {
  /** Postgres connection string (`DATABASE_URL`). */
  databaseUrl: string;
  /** Redis URL (`REDIS_URL`). */
  redisUrl: string;
  /** Spark Connect URL (`SPARK_REMOTE`, `sc://host:port`). */
  sparkRemote: string;
  /** BullMQ key prefix. Default the queue package's (`lakeferry`). */
  queuePrefix?: string;
  /** Postgres schema of lakeferry's tables. Default `public`. */
  dbSchema?: string;
  /** Postgres connections this process opens at most (`LAKEFERRY_PG_POOL_MAX`). Default 10. */
  dbPoolMax?: number;
  /** Jobs (files) this process works on at once. Default 1000. */
  concurrency?: number;
  /** Group-commit limits. */
  batch?: Partial<BatchLimits>;
  /** One write in flight per table across the fleet; see FileIngestorOptions. Default true. */
  oneWriterPerTable?: boolean;
  /** File lease in ms. Default 60 000. */
  leaseMs?: number;
  /** Time between reconciler passes in ms. Default 30 000. */
  reconcileIntervalMs?: number;
  /** Age after which an OPEN batch is checked by the reconciler, in ms. Default 60 000. */
  batchGraceMs?: number;
  /**
   * How long the API's records of submissions with a `requestId` are kept (a request sent again within it
   * gets its first answer back), in ms; the reconciler deletes older ones. Default 604 800 000 (7 days).
   */
  submissionRetentionMs?: number;
  /** This worker's name in leases and attempts. Default `<host>-<pid>-<random>`. */
  workerId?: string;
  logger: Logger;
  /**
   * Where the worker announces what happens (`file:settled`, `batch:finished`, `spark:error`,
   * `breaker:changed` of the ingest and submit queues, and the batches its reconciler resolves), for
   * metrics and tests. Default: nowhere.
   */
  events?: PipelineEvents;
  /** Crash points for fault tests only. */
  faults?: FaultInjection;
  /** Path submissions (`lakeferry-submit`) this process registers at once; 0 takes none. Default 8. */
  submitConcurrency?: number;
  /** Storage options: how submitted paths are looked up in their ingestion's source. */
  storeOptions?: (uri: string) => StoreOptions;
}

/**
 * A worker process's moving parts: the ingest queue consumer, the file ingestor with its group-commit
 * batcher writing through Spark Connect into Iceberg, and a reconciler.
 */
export class WorkerRuntime {
  readonly workerId: string;
  readonly #options: WorkerRuntimeOptions;
  #db: Database | undefined;
  #queue: IngestQueue | undefined;
  /** One Spark session per concurrent write, for the life of the process; released at close. */
  #sessions: SparkConnectClient[] = [];
  #ingestor: FileIngestor | undefined;
  #worker: IngestWorker | undefined;
  #reconciler: Reconciler | undefined;
  #submitWorker: SubmitWorker | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: WorkerRuntimeOptions) {
    this.#options = options;
    this.workerId = options.workerId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString("hex")}`;
  }

  /** Connects and starts taking jobs and reconciling. */
  async start(): Promise<void> {
    const o = this.#options;
    const logger = o.logger.child({ worker: this.workerId });
    const concurrency = o.concurrency ?? 1000;
    this.#db = createDatabase({
      connectionString: o.databaseUrl,
      ...(o.dbSchema ? { schema: o.dbSchema } : {}),
      maxConnections: o.dbPoolMax ?? 10,
    });
    const connection = { redisUrl: o.redisUrl, ...(o.queuePrefix ? { prefix: o.queuePrefix } : {}) };
    this.#queue = new IngestQueue(connection);
    // Staging a batch holds its session's `spark.wap.id`: one session per write that may run at once.
    const writes = o.batch?.maxConcurrentWrites ?? DEFAULT_BATCH_LIMITS.maxConcurrentWrites;
    this.#sessions = Array.from({ length: writes }, () => new SparkConnectClient({ remote: o.sparkRemote }));
    const writer = new IcebergWriterPool(this.#sessions.map((spark) => new IcebergWriter({ spark, logger })));
    const ingestor: FileIngestor = new FileIngestor({
      db: this.#db,
      writer,
      workerId: this.workerId,
      logger,
      concurrency,
      // Every session talks to the same server: the first one answers for its codecs.
      codecs: new SparkSessionCodecs(this.#sessions[0]!),
      ...(o.leaseMs ? { leaseMs: o.leaseMs } : {}),
      ...(o.batch ? { batch: o.batch } : {}),
      ...(o.oneWriterPerTable === undefined ? {} : { oneWriterPerTable: o.oneWriterPerTable }),
      ...(o.events ? { events: o.events } : {}),
      ...(o.faults ? { faults: o.faults } : {}),
      // Checked again where files are read: this worker's environment may allow less than the applier's.
      accessPolicy: accessPolicyFrom(o.storeOptions?.("file:///").env ?? {}),
    });
    this.#ingestor = ingestor;
    this.#worker = new IngestWorker({
      ...connection,
      concurrency,
      process: (job) => ingestor.process(job),
      onError: (err) => logger.warn({ err: errorMessage(err) }, "queue worker error"),
      onOutage: announceBreaker(INGEST_QUEUE, logger, o.events),
    });
    this.#reconciler = new Reconciler({
      db: this.#db,
      queue: this.#queue,
      writer,
      logger,
      holder: this.workerId,
      ...(o.reconcileIntervalMs ? { intervalMs: o.reconcileIntervalMs } : {}),
      ...(o.batchGraceMs !== undefined ? { batchGraceMs: o.batchGraceMs } : {}),
      ...(o.submissionRetentionMs !== undefined ? { submissionRetentionMs: o.submissionRetentionMs } : {}),
      ...(o.events ? { events: o.events } : {}),
    });
    const submitConcurrency = o.submitConcurrency ?? 8;
    if (submitConcurrency > 0) {
      const queue = this.#queue;
      const db = this.#db;
      this.#submitWorker = new SubmitWorker({
        ...connection,
        concurrency: submitConcurrency,
        // The same rules as the HTTP API's submissions; refused paths are kept with the run.
        // A stop that outlasts the close timeout interrupts the submission between steps, its run
        // finished as such; the job waits for another worker.
        process: async (data, { jobId, signal }) => {
          const submission = await submitFiles(
            {
              db,
              queue,
              logger: logger.child({ submitJob: jobId }),
              ...(o.storeOptions ? { storeOptions: o.storeOptions } : {}),
            },
            data.ingestion,
            data.paths,
            { signal },
          );
          // The job's return value stays small (BullMQ copies it into its event stream too): every
          // refused path is kept with the run; the first ones are named here.
          return {
            runId: submission.run.id,
            accepted: submission.accepted.length,
            refused: submission.refused.length,
            firstRefused: submission.refused.slice(0, FIRST_REFUSED),
          };
        },
        onError: (err) => logger.warn({ err: errorMessage(err) }, "submit queue worker error"),
        onOutage: announceBreaker(SUBMIT_QUEUE, logger, o.events),
      });
    }
    await this.#worker.start();
    await this.#submitWorker?.start();
    this.#reconciler.start();
    logger.info({ concurrency, batch: ingestor.batchLimits }, "worker started");
  }

  /**
   * Stops taking jobs, lets in-flight files and batches finish for up to `timeoutMs` (default 30 000), then
   * interrupts what still runs (interrupted jobs go back to the queue; an interrupted batch stays OPEN for
   * the reconciler) and closes every connection.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= this.#shutDown(options.timeoutMs ?? 30_000);
    return this.#closing;
  }

  async #shutDown(timeoutMs: number): Promise<void> {
    const logger = this.#options.logger.child({ worker: this.workerId });
    const started = Date.now();
    await this.#reconciler?.close();
    const submitClosed = this.#submitWorker?.close({ timeoutMs, abortGraceMs: 2_000 });
    const workerClosed = this.#worker?.close({ timeoutMs, abortGraceMs: 2_000 });
    // Batches still gathering are written now instead of waiting for company.
    this.#ingestor?.flush();
    await Promise.all([workerClosed, submitClosed]);
    await this.#ingestor?.close();
    await Promise.all(this.#sessions.map((spark) => spark.close().catch(() => {})));
    await this.#queue?.close().catch(() => {});
    await this.#db?.close().catch(() => {});
    logger.info({ ms: Date.now() - started }, "worker closed");
  }
}

type OutageEvent = Parameters<NonNullable<SubmitWorkerOptions["onOutage"]>>[0];

/**
 * What a queue's outage breaker tells in this worker, the same for every queue: `breaker:changed` for
 * metrics, and a log line (`breaker: open` at warn, `breaker: closed` at info) naming the queue.
 */
function announceBreaker(
  queue: string,
  logger: Logger,
  events: PipelineEvents | undefined,
): (event: OutageEvent) => void {
  return ({ outage, pauseMs, error }) => {
    events?.emit("breaker:changed", { queue, state: pauseMs === 0 ? "closed" : "open", outage, pauseMs });
    if (pauseMs > 0) {
      logger.warn(
        { queue, breaker: "open", outage, pauseMs, err: errorMessage(error) },
        "dependency down: claiming paused, no attempt spent",
      );
    } else if (outage === "none") {
      logger.info({ queue, breaker: "closed" }, "dependency answers again; claiming resumes");
    } else {
      logger.info(
        { queue, breaker: "closed", outage },
        "outage pause over with no job waiting to try the dependency; claiming resumes",
      );
    }
  };
}
