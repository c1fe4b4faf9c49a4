import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import express, { type Express } from "express";
import type { Logger } from "@lakeferry/core";
import { createDatabase } from "@lakeferry/db";
import { AllQueues, DiscoveryQueue, IngestQueue } from "@lakeferry/queue";
import { SparkConnectClient } from "@lakeferry/spark-connect";
import type { ApiContext } from "./api-context.ts";
import { mountRoutes, type ApiRoute } from "./api-route.ts";
import type { ApiKeys, Authentication } from "./auth.ts";
import { ProblemError, problemHandler } from "./problem.ts";
import { redisGuard } from "./redis-guard.ts";
import { fileRoutes } from "./routes/files.ts";
import { healthRoutes } from "./routes/health.ts";
import { metricsRoute } from "./routes/metrics.ts";
import { ingestionRoutes } from "./routes/ingestions.ts";
import { openApiRoute } from "./routes/openapi-document.ts";
import { mountQueueBoard } from "./routes/queue-board.ts";
import { runRoutes } from "./routes/runs.ts";

/** The API's version in its OpenAPI document. */
export const API_VERSION = "1.0.0";

export interface ApiServerOptions {
  /** Postgres (`DATABASE_URL`). */
  databaseUrl: string;
  /** Redis (`REDIS_URL`). */
  redisUrl: string;
  /** Spark Connect (`SPARK_REMOTE`), for the readiness check. */
  sparkRemote: string;
  /** Postgres schema of lakeferry's tables. Default `public`. */
  dbSchema?: string;
  /** BullMQ key prefix. Default the queue package's (`lakeferry`). */
  queuePrefix?: string;
  /** The API keys, or `"insecure"`: every request is served as operator, without a key. */
  keys: ApiKeys | "insecure";
  logger: Logger;
  /** The environment storage SDKs and ingestions' `{ env: NAME }` credentials are read from. */
  env?: Record<string, string | undefined>;
  /**
   * How long each readiness check may take, in ms. Default 3000 (the first Spark check also opens the API's
   * Spark session).
   */
  readyTimeoutMs?: number;
  /**
   * How long a request that uses the queues waits for Redis to answer a PING before it is answered 503
   * (ms); checked before such a request goes on and every second while it waits. Default 3000.
   */
  redisTimeoutMs?: number;
  /** Postgres connections. Default 10. */
  maxConnections?: number;
}

/** A running API: the express app, and its lifecycle. */
export interface ApiServer {
  /** The express app (every route, Bull Board and the error handler are mounted). */
  readonly app: Express;
  /** The routes the app serves, as the OpenAPI document lists them. */
  readonly routes: readonly ApiRoute[];
  /** Listens on `host`:`port` (port 0: any free port); resolves with the address taken. */
  start(options: { host: string; port: number }): Promise<{ host: string; port: number; url: string }>;
  /**
   * Stops accepting connections, lets requests in flight finish for up to `timeoutMs` (default 10 s) and
   * closes its connections to Postgres, Redis and Spark. Idempotent.
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
}

/**
 * The HTTP API of issue 10: ingestions, runs, files, path submission, retries, health and the OpenAPI
 * document under bearer-token roles, and Bull Board at /admin/queues. Opens its connections at once (each
 * connects lazily) and closes them in `close()`.
 */
export function createApiServer(options: ApiServerOptions): ApiServer {
  const logger = options.logger;
  const connection = {
    redisUrl: options.redisUrl,
    ...(options.queuePrefix ? { prefix: options.queuePrefix } : {}),
  };
  const db = createDatabase({
    connectionString: options.databaseUrl,
    ...(options.dbSchema ? { schema: options.dbSchema } : {}),
    maxConnections: options.maxConnections ?? 10,
  });
  const ingestQueue = new IngestQueue(connection);
  const discoveryQueue = new DiscoveryQueue(connection);
  const queues = new AllQueues(connection);
  let spark: SparkConnectClient | undefined;
  const env = options.env ?? {};
  const ctx: ApiContext = {
    db,
    ingestQueue,
    discoveryQueue,
    queues,
    spark: () =>
      (spark ??= new SparkConnectClient({ remote: options.sparkRemote, clientType: "lakeferry-api" })),
    logger,
    pipeline: { db, queue: ingestQueue, logger, storeOptions: () => ({ env }) },
    readyTimeoutMs: options.readyTimeoutMs ?? 3_000,
  };
  const auth: Authentication = options.keys === "insecure" ? { insecure: true } : { keys: options.keys };

  const routes: ApiRoute[] = [];
  routes.push(
    ...healthRoutes(ctx),
    metricsRoute(ctx),
    openApiRoute(() => routes, API_VERSION),
    ...ingestionRoutes(ctx),
    ...runRoutes(ctx),
    ...fileRoutes(ctx),
  );

  const app = express();
  app.disable("x-powered-by");
  app.set("query parser", "simple");
  app.use((req, res, next) => {
    const started = performance.now();
    res.on("finish", () => {
      // The path without its query; never a header (the Authorization header carries the token).
      const fields = {
        method: req.method,
        path: req.originalUrl.split("?", 1)[0],
        status: res.statusCode,
        ms: Math.round(performance.now() - started),
        role: res.locals.role as string | undefined,
      };
      if (res.statusCode >= 500) logger.error(fields, "request");
      else logger.info(fields, "request");
    });
    next();
  });
  const requireRedis = redisGuard(queues, { timeoutMs: options.redisTimeoutMs ?? 3_000, logger });
  mountRoutes(app, routes, auth, requireRedis);
  mountQueueBoard(app, queues, auth, requireRedis);
  app.use(() => {
    throw new ProblemError("not-found", "no such path (GET /api/v1/openapi.json lists them)");
  });
  app.use(problemHandler(logger));

  let server: Server | undefined;
  let closing: Promise<void> | undefined;

  return {
    app,
    routes,
    start: ({ host, port }) =>
      new Promise((resolve, reject) => {
        const listening = app.listen(port, host);
        listening.once("error", reject);
        listening.once("listening", () => {
          listening.off("error", reject);
          server = listening;
          const address = listening.address() as AddressInfo;
          const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
          resolve({ host: address.address, port: address.port, url: `http://${shownHost}:${address.port}` });
        });
      }),
    close: ({ timeoutMs = 10_000 } = {}) =>
      (closing ??= (async () => {
        if (server) {
          const stopped = new Promise<void>((resolve) => server!.close(() => resolve()));
          server.closeIdleConnections();
          const deadline = setTimeout(() => server!.closeAllConnections(), timeoutMs);
          await stopped;
          clearTimeout(deadline);
        }
        await Promise.allSettled([
          db.close(),
          ingestQueue.close(),
          discoveryQueue.close(),
          queues.close(),
          spark?.close(),
        ]);
      })()),
  };
}
