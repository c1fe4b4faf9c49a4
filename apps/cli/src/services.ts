import { createLogger, InvalidInputError, type Logger } from "@lakeferry/core";
import type { Database, Ingestion } from "@lakeferry/db";
import type { PipelineContext } from "@lakeferry/pipeline";
import type { DiscoveryQueue, IngestQueue } from "@lakeferry/queue";
import type { SparkConnectClient } from "@lakeferry/spark-connect";
import { requireSetting, type CliConfig } from "./config.ts";

/**
 * The connections one CLI command uses, opened on first use and closed together when the command ends.
 * Packages are imported on first use too: `lakeferry sql` never loads Postgres or the cloud SDKs, and
 * `lakeferry migrate` never needs Redis.
 */
export class CliServices {
  readonly config: CliConfig;
  readonly logger: Logger;
  readonly env: Record<string, string | undefined>;
  #db: Database | undefined;
  #ingestQueue: IngestQueue | undefined;
  #discoveryQueue: DiscoveryQueue | undefined;
  #spark: SparkConnectClient | undefined;

  constructor(config: CliConfig, env: Record<string, string | undefined>) {
    this.config = config;
    this.env = env;
    this.logger = createLogger({ name: "cli", level: config.logLevel });
  }

  async db(): Promise<Database> {
    const connectionString = requireSetting(this.config, "databaseUrl");
    const { createDatabase } = await import("@lakeferry/db");
    this.#db ??= createDatabase({ connectionString, schema: this.config.dbSchema, maxConnections: 4 });
    return this.#db;
  }

  async ingestQueue(): Promise<IngestQueue> {
    const redisUrl = requireSetting(this.config, "redisUrl");
    const { IngestQueue } = await import("@lakeferry/queue");
    this.#ingestQueue ??= new IngestQueue({ redisUrl, prefix: this.config.queuePrefix });
    return this.#ingestQueue;
  }

  async discoveryQueue(): Promise<DiscoveryQueue> {
    const redisUrl = requireSetting(this.config, "redisUrl");
    const { DiscoveryQueue } = await import("@lakeferry/queue");
    this.#discoveryQueue ??= new DiscoveryQueue({ redisUrl, prefix: this.config.queuePrefix });
    return this.#discoveryQueue;
  }

  async spark(): Promise<SparkConnectClient> {
    const remote = requireSetting(this.config, "sparkRemote");
    const { SparkConnectClient } = await import("@lakeferry/spark-connect");
    this.#spark ??= new SparkConnectClient({ remote });
    return this.#spark;
  }

  /** What the pipeline's functions need: Postgres, the ingest queue, a logger, storage settings. */
  async pipeline(): Promise<PipelineContext> {
    return {
      db: await this.db(),
      queue: await this.ingestQueue(),
      logger: this.logger,
      storeOptions: () => ({ env: this.env }),
    };
  }

  /** The ingestion called `name`; InvalidInputError when there is none. */
  async ingestion(name: string): Promise<Ingestion> {
    const { getIngestion } = await import("@lakeferry/db");
    const ingestion = await getIngestion(await this.db(), name);
    if (ingestion === undefined) {
      throw new InvalidInputError(
        "NAME",
        `no ingestion named "${name}" (see \`lakeferry ingestion list\`; create one with \`lakeferry ingestion apply -f FILE.yaml\`)`,
      );
    }
    return ingestion;
  }

  async close(): Promise<void> {
    const closing: Promise<void>[] = [];
    if (this.#spark) closing.push(this.#spark.close());
    if (this.#ingestQueue) closing.push(this.#ingestQueue.close());
    if (this.#discoveryQueue) closing.push(this.#discoveryQueue.close());
    if (this.#db) closing.push(this.#db.close());
    await Promise.allSettled(closing);
  }
}
