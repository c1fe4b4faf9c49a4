import type { Logger } from "@lakeferry/core";
import { getIngestion, type Database, type Ingestion } from "@lakeferry/db";
import type { PipelineContext } from "@lakeferry/pipeline";
import type { AllQueues, DiscoveryQueue, IngestQueue } from "@lakeferry/queue";
import type { SparkConnectClient } from "@lakeferry/spark-connect";
import { notFound } from "./problem.ts";

/** What the routes work with; the server opens it and closes it. */
export interface ApiContext {
  db: Database;
  ingestQueue: IngestQueue;
  discoveryQueue: DiscoveryQueue;
  /** Every queue, for Bull Board and the Redis readiness check. */
  queues: AllQueues;
  /** The Spark Connect client of the readiness check, opened on first use. */
  spark(): SparkConnectClient;
  logger: Logger;
  /** What @lakeferry/pipeline's control-plane functions take. */
  pipeline: PipelineContext;
  /** How long each readiness check may take (ms). */
  readyTimeoutMs: number;
}

/** The ingestion called `name`; a 404 problem when there is none. */
export async function ingestionNamed(ctx: ApiContext, name: string): Promise<Ingestion> {
  const ingestion = await getIngestion(ctx.db, name);
  if (ingestion === undefined) {
    throw notFound(`no ingestion is named ${JSON.stringify(name)} (GET /api/v1/ingestions lists them)`);
  }
  return ingestion;
}
