import { once } from "node:events";
import { Queue } from "bullmq";
import { DEFAULT_PREFIX, QUEUE_NAMES, type QueueConnectionOptions } from "./job-catalog.ts";
import { redisConnection, type RedisConnection } from "./redis-connection.ts";

/**
 * Every lakeferry queue ({@link QUEUE_NAMES}) opened as plain BullMQ queues, for a dashboard (Bull Board's
 * BullMQAdapter takes them) and for health checks of the Redis behind them. Producers and workers use the
 * typed classes (IngestQueue, DiscoveryQueue) instead.
 */
export class AllQueues {
  /** One BullMQ queue per lakeferry queue, sharing one Redis connection. */
  readonly queues: readonly Queue[];
  readonly #redis: RedisConnection;
  readonly #probe: RedisConnection;

  constructor(options: QueueConnectionOptions) {
    this.#redis = redisConnection(options.redisUrl);
    const prefix = options.prefix ?? DEFAULT_PREFIX;
    this.queues = QUEUE_NAMES.map((name) => {
      const queue = new Queue(name, { connection: this.#redis, prefix });
      // An unhandled 'error' event would crash the process; connection errors surface on the calls instead.
      queue.on("error", () => {});
      return queue;
    });
    // Its own connection that fails at once while Redis is unreachable, where the queues' connection waits
    // for Redis to come back (maxRetriesPerRequest: null): a health check must answer, not wait.
    this.#probe = redisConnection(options.redisUrl, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      lazyConnect: true,
    });
    this.#probe.on("error", () => {});
  }

  /**
   * Resolves when Redis answers a PING within `timeoutMs` (milliseconds); throws otherwise, with the
   * reason (refused, timed out, …).
   */
  async ping(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Redis did not answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      await Promise.race([this.#pingOnce(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #pingOnce(): Promise<void> {
    const probe = this.#probe;
    if (probe.status === "wait" || probe.status === "end") {
      await probe.connect();
    } else if (probe.status !== "ready") {
      // Connecting or reconnecting: wait for the outcome rather than failing on a half-open connection.
      await Promise.race([
        once(probe, "ready"),
        once(probe, "error").then(([err]: unknown[]) => {
          throw err instanceof Error ? err : new Error(String(err));
        }),
      ]);
    }
    await probe.ping();
  }

  /** Closes the queues and their connections. */
  async close(): Promise<void> {
    await Promise.allSettled(this.queues.map((queue) => queue.close()));
    await this.#redis.quit().catch(() => this.#redis.disconnect());
    this.#probe.disconnect();
  }
}
