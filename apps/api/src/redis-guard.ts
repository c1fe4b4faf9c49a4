import type { RequestHandler } from "express";
import { errorMessage, type Logger } from "@lakeferry/core";
import type { AllQueues } from "@lakeferry/queue";
import { ProblemError, sendProblem } from "./problem.ts";

/** Seconds a client is asked to wait (`Retry-After`) before trying again while Redis is unreachable. */
export const REDIS_RETRY_AFTER_SECONDS = 5;

/** How often a request waiting on Redis checks that Redis still answers (ms), at most. */
const WATCH_EVERY_MS = 1_000;

export interface RedisGuardOptions {
  /** How long a PING may take before Redis counts as unreachable (ms). */
  timeoutMs: number;
  logger: Logger;
}

/** The 503 a request gets while Redis is unreachable; `why` says what it had done by then. */
export function redisUnreachable(reason: string, why: "before" | "during"): ProblemError {
  const detail =
    why === "before"
      ? `Redis is unreachable (${reason}); nothing was done: retry in a few seconds`
      : `Redis stopped answering while the request waited on it (${reason}): retry in a few seconds; ` +
        `what it recorded in Postgres stands, and its files left PENDING are queued once Redis is back`;
  return new ProblemError("unavailable", detail, {
    headers: { "Retry-After": String(REDIS_RETRY_AFTER_SECONDS) },
  });
}

/**
 * For requests that use the queues: answers 503 with `Retry-After` when Redis does not answer, instead of
 * hanging. The queues' connection waits for Redis to come back (`maxRetriesPerRequest: null`, which the
 * workers need), so a queue call made while Redis is down would wait as long as the outage. Redis is
 * pinged (through the queues' probe connection, which fails at once) before the request goes on, and
 * every second while it waits; a failed ping answers it. Its work goes on in the background: the queue
 * calls complete once Redis is back, and enqueueing twice is harmless (job ids come from file rows).
 */
export function redisGuard(queues: AllQueues, options: RedisGuardOptions): RequestHandler {
  const { timeoutMs, logger } = options;
  let pinging: Promise<void> | undefined;
  // Requests arriving together share one PING.
  const ping = (): Promise<void> =>
    (pinging ??= queues.ping(timeoutMs).finally(() => {
      pinging = undefined;
    }));

  return async (req, res, next) => {
    try {
      await ping();
    } catch (error) {
      throw redisUnreachable(errorMessage(error), "before");
    }
    const watch = setInterval(
      () => {
        ping().catch((error: unknown) => {
          if (res.headersSent) return;
          const problem = redisUnreachable(errorMessage(error), "during");
          logger.warn(
            { method: req.method, path: req.originalUrl.split("?", 1)[0], err: error },
            "answered 503 while the request waited on Redis; its work goes on",
          );
          sendProblem(res, problem.toProblem(), problem.headers);
        });
      },
      Math.min(WATCH_EVERY_MS, timeoutMs),
    );
    watch.unref();
    res.once("close", () => clearInterval(watch));
    next();
  };
}
