import { defineRoute, type ApiRoute } from "../api-route.ts";
import { openApiDocument } from "../openapi.ts";

/** `/api/v1/openapi.json`: the document of `routes()` (which includes this route). */
export function openApiRoute(routes: () => readonly ApiRoute[], version: string): ApiRoute {
  let document: unknown;
  return defineRoute({
    method: "get",
    path: "/api/v1/openapi.json",
    operationId: "openApiDocument",
    summary: "This API's OpenAPI 3.1 document",
    tag: "meta",
    role: undefined,
    responses: { 200: { description: "The OpenAPI document", contentType: "application/json" } },
    handle: async () => {
      document ??= openApiDocument(routes(), { version });
      return { status: 200, body: document };
    },
  });
}
