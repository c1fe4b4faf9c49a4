import express, { type Express, type Request, type RequestHandler, type Response } from "express";
import type { z } from "zod";
import { requireRole, type Authentication, type Role } from "./auth.ts";
import {
  fieldErrors,
  invalidRequest,
  ProblemError,
  type InputLocation,
  type ProblemKind,
} from "./problem.ts";

/** What a handler answers: a status, a JSON body (none for 204) and headers. */
export interface ApiResult {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** Default `application/json`; problem documents use `application/problem+json`. */
  contentType?: string;
}

/** One documented answer of a route. */
export interface ApiResponse {
  description: string;
  /** The body's schema (a registered response schema appears as a reference). */
  schema?: z.ZodType;
  /** Default `application/json` (or `application/problem+json` for a Problem). */
  contentType?: string;
}

/**
 * One HTTP route: its method and path, the least role that may call it, the schemas its path parameters,
 * query and body are validated with, its documented answers, and its handler. Express routes and the
 * OpenAPI document are both made from the list of these, so the two always agree.
 */
export interface ApiRoute<P = unknown, Q = unknown, B = unknown> {
  method: "get" | "post" | "put";
  /** OpenAPI form: `/api/v1/ingestions/{name}`. */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tag: string;
  /** The least role that may call it; undefined: anyone, without a key. */
  role: Role | undefined;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  /** Whether the body may be left out (it then validates as `{}`). */
  bodyOptional?: boolean;
  /** Success answers by status. */
  responses: Record<number, ApiResponse>;
  /**
   * Whether the handler uses the queues (Redis): then it is answered 503 with `Retry-After` when Redis does
   * not answer, instead of waiting for Redis to come back (see `redisGuard`).
   */
  redis?: boolean;
  /** Problems this route answers with besides validation (400) and authentication (401/403). */
  problems?: ProblemKind[];
  /** Thin: validated input in, result out; what it does lives in packages. */
  handle(input: {
    params: P;
    query: Q;
    body: B;
    role: Role | undefined;
    req: Request;
    res: Response;
  }): Promise<ApiResult>;
}

/** Declares a route, inferring its handler's input types from its schemas. */
export function defineRoute<P = undefined, Q = undefined, B = undefined>(route: ApiRoute<P, Q, B>): ApiRoute {
  return route;
}

/** `/api/v1/ingestions/{name}` → `/api/v1/ingestions/:name`. */
export function expressPath(path: string): string {
  return path.replace(/\{([A-Za-z0-9_]+)\}/g, ":$1");
}

function parseInput<T>(schema: z.ZodType<T> | undefined, value: unknown, location: InputLocation): T {
  if (schema === undefined) return undefined as T;
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw invalidRequest(fieldErrors(result.error, location, location === "body" ? "body" : location));
}

/** Bodies larger than this are refused (413): 5,000 paths of 1 KiB each, and then some. */
export const BODY_LIMIT = "8mb";

/**
 * Adds each route to `app`: authentication for its role, `redisGuard` for a route that uses Redis, then
 * (only for a route that takes a body) JSON body parsing, validation of its path parameters, query and
 * body (400 naming every bad field), then its handler. The key is checked before the body is read, so a
 * caller without one cannot make the server parse up to {@link BODY_LIMIT} of JSON. A known path asked
 * with another method answers 405 with `Allow`.
 */
export function mountRoutes(
  app: Express,
  routes: readonly ApiRoute[],
  auth: Authentication,
  redisGuard: RequestHandler,
): void {
  const methods = new Map<string, string[]>();
  const parseJson = express.json({ limit: BODY_LIMIT });
  for (const route of routes) {
    const path = expressPath(route.path);
    methods.set(path, [...(methods.get(path) ?? []), route.method.toUpperCase()]);
    const guard: RequestHandler[] = route.role === undefined ? [] : [requireRole(auth, route.role)];
    const redis: RequestHandler[] = route.redis ? [redisGuard] : [];
    const body: RequestHandler[] = route.body === undefined ? [] : [parseJson];
    app[route.method](path, ...guard, ...redis, ...body, async (req: Request, res: Response) => {
      // Answered already (redisGuard gave up on Redis while the body arrived): nothing was done, nor is.
      if (res.headersSent) return;
      const params = parseInput(route.params, req.params, "path");
      const query = parseInput(route.query, { ...(req.query as Record<string, unknown>) }, "query");
      const rawBody: unknown = req.body === undefined && route.bodyOptional ? {} : req.body;
      if (route.body !== undefined && rawBody === undefined) {
        throw invalidRequest([
          {
            field: "body",
            in: "body",
            message: "is required: send JSON with Content-Type: application/json",
          },
        ]);
      }
      const body = parseInput(route.body, rawBody, "body");
      const role = res.locals.role as Role | undefined;
      const result = await route.handle({ params, query, body, role, req, res });
      // Answered already: redisGuard gave up on Redis while the handler waited (its work went on).
      if (res.headersSent) return;
      for (const [name, value] of Object.entries(result.headers ?? {})) res.setHeader(name, value);
      res.status(result.status);
      if (result.body === undefined) {
        res.end();
        return;
      }
      const contentType = result.contentType ?? "application/json";
      // A text answer (Prometheus' exposition format) is sent as it is; everything else is JSON.
      const text = contentType.startsWith("text/") && typeof result.body === "string";
      res.type(contentType).send(text ? result.body : JSON.stringify(result.body));
    });
  }
  for (const [path, allowed] of methods) {
    const allow = [...new Set([...allowed, ...(allowed.includes("GET") ? ["HEAD"] : [])])].join(", ");
    app.all(path, function methodNotAllowed() {
      throw new ProblemError("method-not-allowed", `this path answers ${allow}`, {
        headers: { Allow: allow },
      });
    });
  }
}
