import { collectDefaultMetrics, registerBacklogMetrics, Registry } from "@lakeferry/metrics";
import { z } from "zod";
import { defineRoute, type ApiRoute } from "../api-route.ts";
import type { ApiContext } from "../api-context.ts";

/** Prometheus' text exposition format. */
const EXPOSITION = "text/plain; version=0.0.4; charset=utf-8";

/**
 * `/metrics`: the fleet's backlog as the workers report it (queue depth and the oldest waiting job per
 * queue, files by ingestion and status, read at scrape time) and this process's own figures. A reader key
 * is needed: unlike a worker's metrics port, the API is meant to be reachable from elsewhere.
 */
export function metricsRoute(ctx: ApiContext): ApiRoute {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  registerBacklogMetrics(registry, { db: ctx.db, queues: ctx.queues, logger: ctx.logger });
  return defineRoute({
    method: "get",
    path: "/metrics",
    operationId: "metrics",
    summary: "Prometheus metrics: queue backlog, files by ingestion and status, this process",
    tag: "health",
    role: "reader",
    responses: {
      200: {
        description: "Prometheus text exposition format",
        schema: z.string(),
        contentType: EXPOSITION,
      },
    },
    handle: async () => ({ status: 200, body: await registry.metrics(), contentType: EXPOSITION }),
  });
}
