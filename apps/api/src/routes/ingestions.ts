import {
  listSchemaChanges,
  setIngestionEnabled,
  listIngestions,
  statusCounts,
  type Ingestion as IngestionRecord,
} from "@lakeferry/db";
import { applyIngestion, approveSchemaChanges } from "@lakeferry/pipeline";
import { defineRoute, type ApiRoute } from "../api-route.ts";
import { ingestionNamed, type ApiContext } from "../api-context.ts";
import { invalidRequest, notFound } from "../problem.ts";
import {
  Ingestion,
  IngestionDetail,
  IngestionList,
  IngestionParams,
  IngestionSpec,
  SchemaApproval,
  SchemaChangeList,
  SchemaChangeQuery,
} from "../schemas.ts";

/** List, get, apply (create or replace), enable and disable ingestions. */
export function ingestionRoutes(ctx: ApiContext): ApiRoute[] {
  const setEnabled = async (name: string, enabled: boolean): Promise<IngestionRecord> => {
    const ingestion = await setIngestionEnabled(ctx.db, name, enabled);
    if (ingestion === undefined) throw notFound(`no ingestion is named ${JSON.stringify(name)}`);
    // As `apply` does: a disabled ingestion has no discovery schedule.
    await ctx.discoveryQueue.setSchedule(ingestion.id, ingestion.enabled ? ingestion.schedule : null);
    ctx.logger.info(
      { ingestion: name, ingestionId: ingestion.id, enabled },
      enabled ? "ingestion enabled" : "ingestion disabled",
    );
    return ingestion;
  };

  return [
    defineRoute({
      method: "get",
      path: "/api/v1/ingestions",
      operationId: "listIngestions",
      summary: "Every ingestion, by name",
      tag: "ingestions",
      role: "reader",
      responses: { 200: { description: "The ingestions", schema: IngestionList } },
      handle: async () => ({ status: 200, body: { ingestions: await listIngestions(ctx.db) } }),
    }),
    defineRoute({
      method: "get",
      path: "/api/v1/ingestions/{name}",
      operationId: "getIngestion",
      summary: "One ingestion, with its files per status",
      tag: "ingestions",
      role: "reader",
      params: IngestionParams,
      problems: ["not-found"],
      responses: { 200: { description: "The ingestion", schema: IngestionDetail } },
      handle: async ({ params }) => {
        const ingestion = await ingestionNamed(ctx, params.name);
        return { status: 200, body: { ...ingestion, files: await statusCounts(ctx.db, ingestion.id) } };
      },
    }),
    defineRoute({
      method: "put",
      path: "/api/v1/ingestions/{name}",
      operationId: "applyIngestion",
      summary: "Create or replace an ingestion (what `lakeferry ingestion apply` does)",
      description:
        "The body is the ingestion as the YAML file of `lakeferry ingestion apply` holds it, as JSON, and is " +
        "checked the same way; its `name` must be the one in the path. The discovery schedule follows.",
      tag: "ingestions",
      role: "operator",
      redis: true,
      params: IngestionParams,
      body: IngestionSpec,
      responses: {
        200: { description: "Replaced", schema: Ingestion },
        201: { description: "Created", schema: Ingestion },
      },
      handle: async ({ params, body }) => {
        if (body.name !== params.name) {
          throw invalidRequest([
            {
              field: "name",
              in: "body",
              message: `must be the name in the path (${JSON.stringify(params.name)})`,
            },
          ]);
        }
        const { ingestion, created } = await applyIngestion(
          { ...ctx.pipeline, discovery: ctx.discoveryQueue },
          body,
        );
        return {
          status: created ? 201 : 200,
          body: ingestion,
          ...(created
            ? { headers: { Location: `/api/v1/ingestions/${encodeURIComponent(ingestion.name)}` } }
            : {}),
        };
      },
    }),
    defineRoute({
      method: "post",
      path: "/api/v1/ingestions/{name}/enable",
      operationId: "enableIngestion",
      summary: "Turn an ingestion on: its schedule runs again",
      tag: "ingestions",
      role: "operator",
      redis: true,
      params: IngestionParams,
      problems: ["not-found"],
      responses: { 200: { description: "The ingestion, enabled", schema: Ingestion } },
      handle: async ({ params }) => ({ status: 200, body: await setEnabled(params.name, true) }),
    }),
    defineRoute({
      method: "post",
      path: "/api/v1/ingestions/{name}/disable",
      operationId: "disableIngestion",
      summary: "Turn an ingestion off: no scheduled discovery; its files are kept",
      description:
        "Files already queued are still ingested, and discovery passes and submissions asked for " +
        "explicitly still run.",
      tag: "ingestions",
      role: "operator",
      redis: true,
      params: IngestionParams,
      problems: ["not-found"],
      responses: { 200: { description: "The ingestion, disabled", schema: Ingestion } },
      handle: async ({ params }) => ({ status: 200, body: await setEnabled(params.name, false) }),
    }),
    defineRoute({
      method: "get",
      path: "/api/v1/ingestions/{name}/schema-changes",
      operationId: "listSchemaChanges",
      summary: "New columns waiting for approval (schemaEvolution: failOnNewColumns)",
      description: "What `lakeferry schema diff` shows: each column files brought that the table lacks.",
      tag: "ingestions",
      role: "reader",
      params: IngestionParams,
      query: SchemaChangeQuery,
      problems: ["not-found"],
      responses: { 200: { description: "The changes, pending first", schema: SchemaChangeList } },
      handle: async ({ params, query }) => {
        const ingestion = await ingestionNamed(ctx, params.name);
        const changes = await listSchemaChanges(ctx.db, ingestion.id, { pendingOnly: query.all !== "true" });
        return { status: 200, body: { table: ingestion.targetTable, changes } };
      },
    }),
    defineRoute({
      method: "post",
      path: "/api/v1/ingestions/{name}/schema-changes/approve",
      operationId: "approveSchemaChanges",
      summary: "Add the pending new columns to the table and ingest the files that waited for them",
      description:
        "What `lakeferry schema approve` does. A column seen with two types is refused until the " +
        "ingestion's schemaHints give its type.",
      tag: "ingestions",
      role: "operator",
      redis: true,
      params: IngestionParams,
      problems: ["not-found", "invalid"],
      responses: { 200: { description: "What the approval did", schema: SchemaApproval } },
      handle: async ({ params }) => {
        const ingestion = await ingestionNamed(ctx, params.name);
        const approval = await approveSchemaChanges(
          { db: ctx.db, spark: ctx.spark(), ingestQueue: ctx.ingestQueue },
          ingestion,
        );
        ctx.logger.info({ ingestion: params.name, ...approval }, "schema changes approved");
        return { status: 200, body: approval };
      },
    }),
  ];
}
