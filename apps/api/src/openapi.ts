import { z } from "zod";
import type { ApiRoute } from "./api-route.ts";
import { PROBLEMS, type ProblemKind } from "./problem.ts";
import { requestSchemas, responseSchemas } from "./schemas.ts";

/** The Bull Board UI: mounted beside the routes (not an ApiRoute), documented with them. */
export const QUEUE_BOARD_PATH = "/admin/queues";

type JsonSchema = Record<string, unknown>;

const COMPONENT = (id: string) => `#/components/schemas/${id}`;

/**
 * A JSON Schema without `$schema` (OpenAPI 3.1 documents declare their dialect once) and `$id` (zod sets
 * it to the component's reference, which would make references inside resolve against it).
 */
function bare(schema: JsonSchema): JsonSchema {
  const { $schema: _dialect, $id: _id, ...rest } = schema;
  return rest;
}

/**
 * Every registered schema by name. Both kinds are converted as their input type: request bodies are what
 * callers send; response schemas have no transforms, and as input types their objects do not forbid
 * properties a later version may add (zod's output types say `additionalProperties: false`).
 */
function componentSchemas(): Record<string, JsonSchema> {
  const options = { io: "input", uri: COMPONENT, unrepresentable: "any" } as const;
  const requests = z.toJSONSchema(requestSchemas, options);
  const responses = z.toJSONSchema(responseSchemas, options);
  const schemas: Record<string, JsonSchema> = {};
  for (const [id, schema] of Object.entries({ ...requests.schemas, ...responses.schemas })) {
    schemas[id] = bare(schema);
  }
  return schemas;
}

/** A reference when the schema is registered, else the schema itself. */
function schemaOf(schema: z.ZodType, kind: "request" | "response"): JsonSchema {
  const registry = kind === "request" ? requestSchemas : responseSchemas;
  const named = registry.get(schema)?.id;
  if (named) return { $ref: COMPONENT(named) };
  return bare(z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }));
}

/** One OpenAPI parameter per property of a path or query schema. */
function parametersOf(schema: z.ZodType | undefined, location: "path" | "query"): JsonSchema[] {
  if (schema === undefined) return [];
  const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as {
    properties?: Record<string, JsonSchema>;
    required?: string[];
  };
  return Object.entries(json.properties ?? {}).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: location,
      required: location === "path" || (json.required ?? []).includes(name),
      ...(typeof description === "string" ? { description } : {}),
      schema: rest,
    };
  });
}

function problemResponse(kind: ProblemKind, description?: string): JsonSchema {
  return {
    description: description ?? PROBLEMS[kind].title,
    content: { "application/problem+json": { schema: { $ref: COMPONENT("Problem") } } },
  };
}

function operationOf(route: ApiRoute): JsonSchema {
  const responses: Record<string, JsonSchema> = {};
  for (const [status, answer] of Object.entries(route.responses)) {
    const contentType =
      answer.contentType ?? (Number(status) >= 400 ? "application/problem+json" : "application/json");
    responses[status] = {
      description: answer.description,
      ...(answer.schema
        ? { content: { [contentType]: { schema: schemaOf(answer.schema, "response") } } }
        : {}),
    };
  }
  if (route.params || route.query || route.body) responses["400"] ??= problemResponse("invalid");
  if (route.role !== undefined) {
    responses["401"] ??= problemResponse("unauthorized");
    if (route.role !== "reader") responses["403"] ??= problemResponse("forbidden");
  }
  for (const kind of route.problems ?? []) responses[String(PROBLEMS[kind].status)] ??= problemResponse(kind);
  if (route.redis) {
    responses["503"] ??= problemResponse(
      "unavailable",
      "Redis (the queues) does not answer: retry after the `Retry-After` seconds",
    );
  }
  return {
    operationId: route.operationId,
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    tags: [route.tag],
    security: route.role === undefined ? [] : [{ bearer: [] }],
    ...(route.role !== undefined ? { "x-lakeferry-role": route.role } : {}),
    parameters: [...parametersOf(route.params, "path"), ...parametersOf(route.query, "query")],
    ...(route.body
      ? {
          requestBody: {
            required: !route.bodyOptional,
            content: { "application/json": { schema: schemaOf(route.body, "request") } },
          },
        }
      : {}),
    responses,
  };
}

/**
 * The OpenAPI 3.1 document of the API: every route (and the Bull Board UI), its parameters, bodies and
 * answers, all generated from the zod schemas the routes validate with.
 */
export function openApiDocument(routes: readonly ApiRoute[], options: { version: string }): JsonSchema {
  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const route of routes) {
    (paths[route.path] ??= {})[route.method] = operationOf(route);
  }
  paths[QUEUE_BOARD_PATH] = {
    get: {
      operationId: "queueBoard",
      summary: "Bull Board: every lakeferry queue (read-only below role operator)",
      description:
        "A web UI for people. Readers and producers see the queues read-only; operators may also retry and " +
        "promote jobs, and any other action is a 403. A browser signs in with HTTP Basic: any user name, the " +
        "token as password.",
      tags: ["queues"],
      security: [{ basic: [] }, { bearer: [] }],
      "x-lakeferry-role": "reader",
      responses: {
        "200": { description: "The Bull Board UI", content: { "text/html": { schema: { type: "string" } } } },
        "401": problemResponse("unauthorized"),
      },
    },
  };
  return {
    openapi: "3.1.0",
    info: {
      title: "lakeferry API",
      version: options.version,
      description:
        "Ingestions, runs and files of lakeferry, path submission by upstream systems, and Bull Board. " +
        "Every request needs `Authorization: Bearer <token>` (roles reader, producer, operator) except " +
        "/healthz, /readyz and this document. Errors are application/problem+json.",
    },
    tags: [
      { name: "health", description: "Liveness and readiness" },
      { name: "ingestions", description: "Ingestion definitions" },
      { name: "files", description: "Tracked files and path submission" },
      { name: "runs", description: "Discovery passes and submissions" },
      { name: "queues", description: "Bull Board" },
      { name: "meta", description: "This document" },
    ],
    paths,
    components: {
      schemas: componentSchemas(),
      securitySchemes: {
        bearer: { type: "http", scheme: "bearer", description: "A token from LAKEFERRY_API_KEYS" },
        basic: {
          type: "http",
          scheme: "basic",
          description: "Bull Board in a browser: the token as password",
        },
      },
    },
  };
}
