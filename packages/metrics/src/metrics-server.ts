import { errorMessage, LakeferryError, type Logger } from "@lakeferry/core";
import { createDatabase, type Database } from "@lakeferry/db";
import type { PipelineEvents } from "@lakeferry/pipeline";
import { AllQueues } from "@lakeferry/queue";
import { collectDefaultMetrics, Registry } from "prom-client";
import { registerBacklogMetrics } from "./backlog-metrics.ts";
import { attachPipelineMetrics } from "./pipeline-metrics.ts";
import { serveMetrics, type HealthStatus, type MetricsEndpoint } from "./serve-metrics.ts";

export interface MetricsServerOptions {
  /** TCP port of `/metrics` and `/healthz` (`LAKEFERRY_METRICS_PORT`); 0 picks a free one. */
  port: number;
  /** Interface to listen on (`LAKEFERRY_METRICS_HOST`). Default `127.0.0.1`. */
  host?: string;
  /** The process's pipeline events, turned into metrics (see attachPipelineMetrics). */
  events: PipelineEvents;
  /** Postgres connection string, for the files-by-status gauge (one connection, used at scrape time). */
  databaseUrl: string;
  /**
   * Whether to serve `lakeferry_files` (files by ingestion and status) here too. The API serves it; counting
   * every file in each of the fleet's processes is what this spares. Turn it on where no API runs.
   * Default false.
   */
  fileTotals?: boolean;
  /** With `fileTotals`, how long one count is served before Postgres is asked again, in ms. Default 15 000. */
  fileTotalsMaxAgeMs?: number;
  /** Postgres schema of lakeferry's tables. Default `public`. */
  dbSchema?: string;
  /** Redis URL, for the queue gauges. */
  redisUrl: string;
  /** BullMQ key prefix. Default the queue package's. */
  queuePrefix?: string;
  /** What `/healthz` answers. Default: always ok. */
  health?: () => HealthStatus | Promise<HealthStatus>;
  logger: Logger;
}

/** The metrics port could not be opened (in use, not permitted, unknown host). */
export class MetricsListenError extends LakeferryError {
  constructor(host: string, port: number, cause: unknown) {
    super("METRICS_LISTEN_FAILED", `cannot serve metrics on ${host}:${port}: ${errorMessage(cause)}`, {
      retryable: false,
      cause,
    });
  }
}

/**
 * A worker's or discoverer's metrics: the pipeline's event metrics, the queue gauges read at scrape time
 * (and the files gauge when {@link MetricsServerOptions.fileTotals}), prom-client's default process
 * metrics, served on `/metrics` with `/healthz` beside.
 */
export class MetricsServer {
  /** The metrics served (to add a process's own). */
  readonly registry = new Registry();
  readonly #options: MetricsServerOptions;
  #db: Database | undefined;
  #queues: AllQueues | undefined;
  #endpoint: MetricsEndpoint | undefined;
  #detach: (() => void) | undefined;

  constructor(options: MetricsServerOptions) {
    this.#options = options;
  }

  /** Where the endpoint listens, once started. */
  get url(): string | undefined {
    return this.#endpoint?.url;
  }

  /**
   * Registers the metrics and starts listening.
   * @throws MetricsListenError when the port cannot be opened.
   */
  async start(): Promise<void> {
    const o = this.#options;
    const host = o.host ?? "127.0.0.1";
    collectDefaultMetrics({ register: this.registry });
    this.#detach = attachPipelineMetrics(this.registry, o.events);
    this.#db = createDatabase({
      connectionString: o.databaseUrl,
      ...(o.dbSchema ? { schema: o.dbSchema } : {}),
      maxConnections: 1,
    });
    this.#queues = new AllQueues({
      redisUrl: o.redisUrl,
      ...(o.queuePrefix ? { prefix: o.queuePrefix } : {}),
    });
    registerBacklogMetrics(this.registry, {
      db: this.#db,
      queues: this.#queues,
      logger: o.logger,
      files: o.fileTotals ?? false,
      ...(o.fileTotalsMaxAgeMs === undefined ? {} : { filesMaxAgeMs: o.fileTotalsMaxAgeMs }),
    });
    try {
      this.#endpoint = await serveMetrics({
        port: o.port,
        host,
        registry: this.registry,
        ...(o.health ? { health: o.health } : {}),
      });
    } catch (error) {
      await this.close();
      throw new MetricsListenError(host, o.port, error);
    }
    o.logger.info({ url: this.#endpoint.url }, "serving metrics");
  }

  /** Stops listening and closes its connections. */
  async close(): Promise<void> {
    this.#detach?.();
    await this.#endpoint?.close().catch(() => {});
    await this.#queues?.close().catch(() => {});
    await this.#db?.close().catch(() => {});
    this.#endpoint = undefined;
    this.#queues = undefined;
    this.#db = undefined;
  }
}
