import type { ErrorRequestHandler, Response } from "express";
import { z } from "zod";
import { errorMessage, InvalidInputError, outageOf, type Logger } from "@lakeferry/core";
import type { ApiResult } from "./api-route.ts";

/** Where a request's bad input was: the URL path, its query string or the JSON body. */
export type InputLocation = "path" | "query" | "body";

/** One invalid field of a request. */
export interface FieldError {
  /** The field as the caller named it: `files[3].path`, `status`, `name`. */
  field: string;
  in: InputLocation;
  message: string;
}

/** The kinds of problem the API answers with; each `type` URI is stable. */
export const PROBLEMS = {
  invalid: { status: 400, title: "Invalid request" },
  unauthorized: { status: 401, title: "Missing or unknown API key" },
  forbidden: { status: 403, title: "The API key's role may not do this" },
  "not-found": { status: 404, title: "Not found" },
  "method-not-allowed": { status: 405, title: "Method not allowed" },
  conflict: { status: 409, title: "Conflict" },
  "too-large": { status: 413, title: "Request body too large" },
  "all-refused": { status: 422, title: "Every path or file named was refused" },
  unavailable: { status: 503, title: "A service lakeferry depends on is unavailable" },
  internal: { status: 500, title: "Internal error" },
} as const;

export type ProblemKind = keyof typeof PROBLEMS;

/** The `type` URI of a problem kind. */
export function problemType(kind: ProblemKind): string {
  return `urn:lakeferry:problem:${kind}`;
}

/**
 * An RFC 9457 problem document, the body of every error answer (`application/problem+json`). Validation
 * problems name the first failing `field` and list every one in `errors`.
 */
export const Problem = z
  .object({
    type: z.string().describe("Stable URI of the kind of problem (urn:lakeferry:problem:…)"),
    title: z.string().describe("Short summary of the kind of problem"),
    status: z.number().int().describe("The HTTP status code"),
    detail: z.string().describe("What went wrong in this case, and what to do about it"),
    field: z.string().optional().describe("The first invalid field (validation problems)"),
    errors: z
      .array(
        z.object({
          field: z.string(),
          in: z.enum(["path", "query", "body"]),
          message: z.string(),
        }),
      )
      .optional()
      .describe("Every invalid field (validation problems)"),
  })
  .catchall(z.unknown());
export type Problem = z.output<typeof Problem>;

/** Thrown by handlers (and middleware) to answer with a problem document. */
export class ProblemError extends Error {
  readonly kind: ProblemKind;
  /** Extension members added to the document (`field`, `errors`, `results`, …). */
  readonly extra: Record<string, unknown>;
  /** Response headers to send with it (`WWW-Authenticate`, `Allow`). */
  readonly headers: Record<string, string | string[]>;

  constructor(
    kind: ProblemKind,
    detail: string,
    options: { extra?: Record<string, unknown>; headers?: Record<string, string | string[]> } = {},
  ) {
    super(detail);
    this.name = "ProblemError";
    this.kind = kind;
    this.extra = options.extra ?? {};
    this.headers = options.headers ?? {};
  }

  get status(): number {
    return PROBLEMS[this.kind].status;
  }

  toProblem(): Problem {
    const { status, title } = PROBLEMS[this.kind];
    return { type: problemType(this.kind), title, status, detail: this.message, ...this.extra };
  }
}

/** A 400 naming each invalid field; `detail` leads with the first. */
export function invalidRequest(errors: FieldError[]): ProblemError {
  const [first] = errors;
  const detail = errors.map((error) => `${error.field}: ${error.message}`).join("; ");
  return new ProblemError("invalid", detail || "the request is not valid", {
    extra: { ...(first ? { field: first.field } : {}), errors },
  });
}

/**
 * The 422 answer to a request whose every path or file (`noun`) was refused: a problem document whose
 * `detail` names the first refusal, with `extra` members (each item's result) beside it. Submission and
 * retry answer with it alike.
 */
export function allRefused(
  noun: "path" | "file named",
  first: { name: string; reason: string } | undefined,
  extra: Record<string, unknown>,
): ApiResult {
  const firstOne = first === undefined ? "" : `; the first: ${first.name}: ${first.reason}`;
  return {
    status: PROBLEMS["all-refused"].status,
    contentType: "application/problem+json",
    body: {
      ...new ProblemError("all-refused", `every ${noun} was refused${firstOne}`).toProblem(),
      ...extra,
    },
  };
}

/** A 404 for a named thing that does not exist. */
export function notFound(detail: string): ProblemError {
  return new ProblemError("not-found", detail);
}

/** Writes a problem document. */
export function sendProblem(
  res: Response,
  problem: Problem,
  headers: Record<string, string | string[]> = {},
): void {
  for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
  res.status(problem.status).type("application/problem+json").send(JSON.stringify(problem));
}

/** The field errors of a failed zod parse, named as the caller wrote them. */
export function fieldErrors(error: z.ZodError, location: InputLocation, root?: string): FieldError[] {
  return error.issues.flatMap((issue): FieldError[] => {
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({
        field: fieldName([...issue.path, key], root),
        in: location,
        message: "is not a known field",
      }));
    }
    return [{ field: fieldName(issue.path, root), in: location, message: issueMessage(issue) }];
  });
}

/** `files[3].path` from `["files", 3, "path"]`; `root` (e.g. `body`) when the path is empty. */
export function fieldName(path: readonly PropertyKey[], root = "body"): string {
  if (path.length === 0) return root;
  return path
    .map((part, index) =>
      typeof part === "number" ? `[${part}]` : index === 0 ? String(part) : `.${String(part)}`,
    )
    .join("");
}

function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === "invalid_type" && /received undefined$/.test(issue.message)) return "is required";
  if (issue.code === "invalid_key" && issue.issues[0]) return issue.issues[0].message;
  return issue.message;
}

/** Body-parser's errors carry a `type` and an HTTP status. */
function isBodyParserError(error: unknown): error is Error & { type: string; status: number } {
  return (
    error instanceof Error &&
    typeof (error as { type?: unknown }).type === "string" &&
    typeof (error as { status?: unknown }).status === "number"
  );
}

/**
 * The problem to answer an error with: ProblemErrors as they are, bad input as 400 naming the field, a
 * dependency outage as 503, anything else as 500 (logged; its message is not shown to the caller).
 */
export function problemOf(
  error: unknown,
  logger: Logger,
): { problem: Problem; headers: Record<string, string | string[]> } {
  if (error instanceof ProblemError) return { problem: error.toProblem(), headers: error.headers };
  if (error instanceof InvalidInputError) {
    const message = error.message.slice(error.field.length + 2);
    return {
      problem: invalidRequest([{ field: error.field, in: "body", message }]).toProblem(),
      headers: {},
    };
  }
  if (isBodyParserError(error)) {
    if (error.type === "entity.parse.failed") {
      return {
        problem: invalidRequest([
          { field: "body", in: "body", message: `is not valid JSON (${error.message})` },
        ]).toProblem(),
        headers: {},
      };
    }
    if (error.type === "entity.too.large") {
      return { problem: new ProblemError("too-large", error.message).toProblem(), headers: {} };
    }
    if (error.status >= 400 && error.status < 500) {
      return {
        problem: invalidRequest([{ field: "body", in: "body", message: error.message }]).toProblem(),
        headers: {},
      };
    }
  }
  const outage = outageOf(error);
  if (outage) {
    logger.warn({ err: error, outage }, "request failed: dependency unavailable");
    return {
      problem: new ProblemError(
        "unavailable",
        `${outage} is unavailable: ${errorMessage(error)}`,
      ).toProblem(),
      headers: { "Retry-After": "5" },
    };
  }
  logger.error({ err: error }, "request failed");
  return {
    problem: new ProblemError(
      "internal",
      "the request failed on the server; the API's log has the cause",
    ).toProblem(),
    headers: {},
  };
}

/** Express's last error handler: every error becomes a problem document. */
export function problemHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, _req, res, next) => {
    if (res.writableEnded) {
      // Answered already (503 while Redis was unreachable) and failed afterwards: the connection may
      // carry the caller's next request by now, so it is not cut as express would cut it.
      logger.warn({ err: error }, "request failed after it was answered");
      return;
    }
    if (res.headersSent) {
      next(error);
      return;
    }
    const { problem, headers } = problemOf(error, logger);
    sendProblem(res, problem, headers);
  };
}
