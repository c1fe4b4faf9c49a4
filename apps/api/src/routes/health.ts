import { errorMessage } from "@lakeferry/core";
import { databaseNow } from "@lakeferry/db";
import { defineRoute, type ApiRoute } from "../api-route.ts";
import type { ApiContext } from "../api-context.ts";
import { Health, Readiness } from "../schemas.ts";

type Check = { status: "ok" | "error"; ms: number; error?: string };

/** Runs `probe` with a deadline; reports ok or the error, and how long it took. */
async function check(probe: () => Promise<unknown>, timeoutMs: number, what: string): Promise<Check> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what} did not answer within ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
    return { status: "ok", ms: Math.round(performance.now() - started) };
  } catch (error) {
    return { status: "error", ms: Math.round(performance.now() - started), error: errorMessage(error) };
  } finally {
    clearTimeout(timer);
  }
}

/** `/healthz` (the process answers) and `/readyz` (Postgres, Redis and Spark answer). */
export function healthRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    defineRoute({
      method: "get",
      path: "/healthz",
      operationId: "health",
      summary: "The process is up",
      tag: "health",
      role: undefined,
      responses: { 200: { description: "Up", schema: Health } },
      handle: async () => ({ status: 200, body: { status: "ok" } }),
    }),
    defineRoute({
      method: "get",
      path: "/readyz",
      operationId: "readiness",
      summary: "Postgres, Redis and Spark each answer",
      description: `Each dependency is checked with a deadline of its own; 503 when any fails.`,
      tag: "health",
      role: undefined,
      responses: {
        200: { description: "Every dependency answers", schema: Readiness },
        503: {
          description: "Some dependency does not answer",
          schema: Readiness,
          contentType: "application/json",
        },
      },
      handle: async () => {
        const timeoutMs = ctx.readyTimeoutMs;
        const [postgres, redis, spark] = await Promise.all([
          check(() => databaseNow(ctx.db), timeoutMs, "Postgres"),
          check(() => ctx.queues.ping(timeoutMs), timeoutMs, "Redis"),
          check(() => ctx.spark().version({ deadlineMs: timeoutMs }), timeoutMs, "Spark"),
        ]);
        const ready = postgres.status === "ok" && redis.status === "ok" && spark.status === "ok";
        return {
          status: ready ? 200 : 503,
          body: { status: ready ? "ok" : "unavailable", checks: { postgres, redis, spark } },
        };
      },
    }),
  ];
}
