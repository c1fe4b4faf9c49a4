import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import type { Express, RequestHandler } from "express";
import type { AllQueues } from "@lakeferry/queue";
import { requireRole, type Authentication, type Role } from "../auth.ts";
import { QUEUE_BOARD_PATH } from "../openapi.ts";

/** One Bull Board over every queue, its actions allowed or not. */
function board(queues: AllQueues, readOnly: boolean): RequestHandler {
  const adapter = new ExpressAdapter();
  adapter.setBasePath(QUEUE_BOARD_PATH);
  createBullBoard({
    queues: queues.queues.map((queue) => new BullMQAdapter(queue, { readOnlyMode: readOnly })),
    serverAdapter: adapter,
    options: { uiConfig: { boardTitle: readOnly ? "lakeferry (read-only)" : "lakeferry" } },
  });
  return adapter.getRouter() as RequestHandler;
}

/**
 * Bull Board at /admin/queues with every lakeferry queue. Any key may look (a browser signs in with HTTP
 * Basic, the token as password); operators get a board whose actions work (retry, promote, clean, pause),
 * every other role one whose queues are read-only, where Bull Board refuses each action (405).
 */
export function mountQueueBoard(
  app: Express,
  queues: AllQueues,
  auth: Authentication,
  redisGuard: RequestHandler,
): void {
  const operatorBoard = board(queues, false);
  const readOnlyBoard = board(queues, true);
  app.use(
    QUEUE_BOARD_PATH,
    requireRole(auth, "reader", { allowBasic: true }),
    // Bull Board's own API reads Redis (its page and scripts do not): 503 rather than a hang when it is down.
    // (Case-insensitive, as express routes.)
    (req, res, next) => (/^\/api\//i.test(req.path) ? redisGuard(req, res, next) : next()),
    (req, res, next) => {
      const role = res.locals.role as Role;
      return (role === "operator" ? operatorBoard : readOnlyBoard)(req, res, next);
    },
  );
}
