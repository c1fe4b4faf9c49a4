/**
 * The OpenAPI document (issue 10): generated from the schemas the routes validate with, it passes an
 * independent OpenAPI 3.1 validator, and it lists exactly the routes express serves.
 */
import { Validator } from "@seriousme/openapi-schema-validator";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { QUEUE_BOARD_PATH } from "../src/index.ts";
import { call, startApi, type ApiSandbox } from "./support.ts";

interface Operation {
  operationId: string;
  security: unknown[];
  parameters: { name: string; in: string }[];
  requestBody?: { content: Record<string, { schema: unknown }> };
  responses: Record<string, { content?: Record<string, { schema: unknown }> }>;
  "x-lakeferry-role"?: string;
}
type Document = {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown> };
};

/** `METHOD path` of every route express has, in OpenAPI form (`:name` → `{name}`). */
function expressRoutes(box: ApiSandbox): string[] {
  const router = (box.server.app as unknown as { router: { stack: Layer[] } }).router;
  interface Layer {
    route?: { path: string; methods: Record<string, boolean>; stack: { handle: { name: string } }[] };
  }
  const found = new Set<string>();
  for (const layer of router.stack) {
    if (!layer.route) continue;
    // The catch-all of each path answering 405 for the methods it does not serve.
    if (layer.route.stack.every((handler) => handler.handle.name === "methodNotAllowed")) continue;
    for (const method of Object.keys(layer.route.methods)) {
      found.add(`${method.toUpperCase()} ${layer.route.path.replace(/:([A-Za-z0-9_]+)/g, "{$1}")}`);
    }
  }
  return [...found].sort();
}

describe("the OpenAPI document", () => {
  let box: ApiSandbox;
  let document: Document;
  let failed = false;

  beforeEach(({ onTestFailed }) => onTestFailed(() => void (failed = true)));

  beforeAll(async () => {
    box = await startApi("openapi");
    // Public, like /healthz: a client reads it before it has a key.
    const answer = await call<Document>(box, "GET", "/api/v1/openapi.json");
    expect(answer.status).toBe(200);
    expect(answer.contentType).toMatch(/^application\/json/);
    document = answer.body;
  });

  afterAll(async () => {
    await box?.close(!failed);
  });

  it("passes an independent OpenAPI 3.1 validator, and every $ref resolves", async () => {
    expect(document.openapi).toBe("3.1.0");
    const validator = new Validator();
    const result = await validator.validate(structuredClone(document));
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 1)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(validator.version).toBe("3.1");
    const resolved = JSON.stringify(validator.resolveRefs());
    expect(resolved).not.toContain('"$ref"');
  });

  it("lists exactly the routes express serves (and Bull Board)", () => {
    const documented = Object.entries(document.paths)
      .flatMap(([path, operations]) =>
        Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`),
      )
      .sort();
    const served = [...expressRoutes(box), `GET ${QUEUE_BOARD_PATH}`].sort();
    expect(documented).toEqual(served);
    // Every route the issue asks for is there.
    expect(served).toEqual(
      expect.arrayContaining([
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /api/v1/openapi.json",
        "GET /api/v1/ingestions",
        "GET /api/v1/ingestions/{name}",
        "PUT /api/v1/ingestions/{name}",
        "POST /api/v1/ingestions/{name}/enable",
        "POST /api/v1/ingestions/{name}/disable",
        "POST /api/v1/ingestions/{name}/runs",
        "GET /api/v1/ingestions/{name}/runs",
        "POST /api/v1/ingestions/{name}/files",
        "GET /api/v1/ingestions/{name}/files",
        "GET /api/v1/files/{id}",
        "POST /api/v1/ingestions/{name}/retry",
        "GET /api/v1/runs/{id}",
        "GET /api/v1/runs/{id}/report",
        "GET /admin/queues",
      ]),
    );
  });

  it("documents each route's role, parameters, body and problems from the validating schemas", () => {
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const where = `${method.toUpperCase()} ${path}`;
        const pathParameters = [...path.matchAll(/\{([^}]+)\}/g)].map((match) => match[1]);
        expect(operation.parameters?.filter((p) => p.in === "path").map((p) => p.name) ?? [], where).toEqual(
          pathParameters,
        );
        if (operation["x-lakeferry-role"] !== undefined) {
          expect(operation.responses["401"], where).toBeDefined();
          expect(operation.security.length, where).toBeGreaterThan(0);
        } else {
          expect(operation.security, where).toEqual([]);
        }
        if (pathParameters.length > 0 || operation.requestBody)
          expect(operation.responses["400"], where).toBeDefined();
      }
    }
    const submit = document.paths["/api/v1/ingestions/{name}/files"]!.post!;
    expect(submit["x-lakeferry-role"]).toBe("producer");
    expect(submit.requestBody?.content["application/json"]?.schema).toEqual({
      $ref: "#/components/schemas/SubmitFilesRequest",
    });
    expect(Object.keys(submit.responses).sort()).toEqual([
      "202",
      "400",
      "401",
      "403",
      "404",
      "409",
      "413",
      "422",
      "503",
    ]);
    const request = document.components.schemas.SubmitFilesRequest as {
      properties: { files: { maxItems: number; items: { required: string[] } } };
    };
    expect(request.properties.files.maxItems).toBe(5000);
    expect(request.properties.files.items.required).toEqual(["path"]);
    // The ingestion body is the same schema `lakeferry ingestion apply` validates with.
    const spec = document.components.schemas.IngestionSpec as {
      required: string[];
      additionalProperties: boolean;
    };
    expect(spec.required).toEqual(["name", "source", "format", "table"]);
    expect(spec.additionalProperties).toBe(false);
    const files = document.paths["/api/v1/ingestions/{name}/files"]!.get!;
    expect(files.parameters.map((p) => `${p.in}:${p.name}`)).toEqual([
      "path:name",
      "query:status",
      "query:run",
      "query:since",
      "query:pathPrefix",
      "query:limit",
      "query:cursor",
    ]);
  });
});
