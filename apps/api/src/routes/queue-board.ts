import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { ExpressAdapter } from "@bull-board/express";
import type { Express, Request, RequestHandler, Response } from "express";
import type { AllQueues } from "@lakeferry/queue";
import { requireRole, type Authentication, type Role } from "../auth.ts";
import { QUEUE_BOARD_PATH } from "../openapi.ts";
import { ProblemError } from "../problem.ts";

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
 * Bull Board's actions an operator may take, as paths under the board: retry and promote, for a queue's
 * jobs in a state or one job. Anchored and lower case: express routes case-insensitively and forgives a
 * trailing slash, so any other spelling is refused rather than guessed at.
 */
const OPERATOR_ACTIONS: readonly RegExp[] = [
  /^\/api\/queues\/[^/]+\/retry\/[^/]+$/,
  /^\/api\/queues\/[^/]+\/promote$/,
  /^\/api\/queues\/[^/]+\/[^/]+\/(?:retry|promote)$/,
];

/**
 * Whether an operator may send this request to Bull Board: every read, and PUT for the actions in
 * {@link OPERATOR_ACTIONS}. `…/clean/retry` looks like retrying job "clean" but Bull Board routes it to
 * cleaning (its clean route comes first), so a job id of `clean` in any case is refused.
 */
export function operatorMayAct(method: string, path: string): boolean {
  if (method === "GET" || method === "HEAD") return true;
  if (method !== "PUT" || !OPERATOR_ACTIONS.some((action) => action.test(path))) return false;
  return path.split("/")[4]?.toLowerCase() !== "clean";
}

/**
 * Refuses an operator's Bull Board action other than retry and promote (403): cleaning, removing,
 * emptying, pausing or editing jobs behind lakeferry's back would leave Postgres and the queues telling
 * different stories (the reconciler re-enqueues a removed job's PENDING file anyway).
 */
function refuseOtherActions(req: Request): void {
  if (operatorMayAct(req.method, req.path)) return;
  throw new ProblemError(
    "forbidden",
    `Bull Board lets operators read, retry and promote jobs only; ${req.method} ${QUEUE_BOARD_PATH}${req.path} ` +
      "is refused (to queue files again use lakeferry retry or POST /api/v1/ingestions/{name}/retry)",
  );
}

/**
 * Bull Board at /admin/queues with every lakeferry queue. Any key may look (a browser signs in with HTTP
 * Basic, the token as password); operators may also retry and promote jobs (any other action is a 403),
 * every other role gets a board whose queues are read-only, where Bull Board refuses each action (405).
 */
export function mountQueueBoard(
  app: Express,
  queues: AllQueues,
  auth: Authentication,
  redisGuard: RequestHandler,
): void {
  const operatorBoard = board(queues, false);
  const readOnlyBoard = board(queues, true);
  const isOperator = (res: Response) => (res.locals.role as Role) === "operator";
  app.use(
    QUEUE_BOARD_PATH,
    requireRole(auth, "reader", { allowBasic: true }),
    (req, res, next) => {
      if (isOperator(res)) refuseOtherActions(req);
      next();
    },
    // Bull Board's own API reads Redis (its page and scripts do not): 503 rather than a hang when it is down.
    // (Case-insensitive, as express routes.)
    (req, res, next) => (/^\/api\//i.test(req.path) ? redisGuard(req, res, next) : next()),
    (req, res, next) => (isOperator(res) ? operatorBoard : readOnlyBoard)(req, res, next),
  );
}
