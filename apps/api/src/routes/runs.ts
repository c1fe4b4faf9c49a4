import { getIngestionById, getRun, listRuns, runReport, runSettled } from "@lakeferry/db";
import { discoverFiles } from "@lakeferry/pipeline";
import { defineRoute, type ApiRoute } from "../api-route.ts";
import { ingestionNamed, type ApiContext } from "../api-context.ts";
import { notFound } from "../problem.ts";
import {
  DiscoverRequest,
  DiscoveryResult,
  IngestionParams,
  ListRunsQuery,
  RunDetail,
  RunList,
  RunParams,
  RunReport,
  RunReportQuery,
} from "../schemas.ts";

const noRun = (id: number) => notFound(`no run has id ${id} (GET /api/v1/ingestions/{name}/runs lists them)`);

/** Discovery passes (run one now, list, get) and run reports. */
export function runRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    defineRoute({
      method: "post",
      path: "/api/v1/ingestions/{name}/runs",
      operationId: "discover",
      summary: "Run one discovery pass now and answer with it (what `lakeferry discover` does)",
      description:
        "Lists the source, registers new and changed files and queues them; answers when the listing is " +
        "done (the files are ingested afterwards: follow the run with GET /api/v1/runs/{id}). A storage " +
        "problem (missing bucket, access denied) ends the run as failed, with `error` set.",
      tag: "runs",
      role: "operator",
      redis: true,
      params: IngestionParams,
      body: DiscoverRequest,
      bodyOptional: true,
      problems: ["not-found"],
      responses: { 201: { description: "The pass, finished", schema: DiscoveryResult } },
      handle: async ({ params, body }) => {
        const ingestion = await ingestionNamed(ctx, params.name);
        const result = await discoverFiles(ctx.pipeline, ingestion, {
          trigger: "manual",
          full: body.full ?? false,
        });
        return { status: 201, body: result, headers: { Location: `/api/v1/runs/${result.run.id}` } };
      },
    }),
    defineRoute({
      method: "get",
      path: "/api/v1/ingestions/{name}/runs",
      operationId: "listRuns",
      summary: "An ingestion's recent runs (discovery passes and submissions), newest first",
      tag: "runs",
      role: "reader",
      params: IngestionParams,
      query: ListRunsQuery,
      problems: ["not-found"],
      responses: { 200: { description: "The runs", schema: RunList } },
      handle: async ({ params, query }) => {
        const ingestion = await ingestionNamed(ctx, params.name);
        return { status: 200, body: { runs: await listRuns(ctx.db, ingestion.id, query.limit) } };
      },
    }),
    defineRoute({
      method: "get",
      path: "/api/v1/runs/{id}",
      operationId: "getRun",
      summary: "One run, with how far its files have got",
      tag: "runs",
      role: "reader",
      params: RunParams,
      problems: ["not-found"],
      responses: { 200: { description: "The run", schema: RunDetail } },
      handle: async ({ params }) => {
        const run = await getRun(ctx.db, params.id);
        if (run === undefined) throw noRun(params.id);
        const [ingestion, progress] = await Promise.all([
          getIngestionById(ctx.db, run.ingestionId),
          runSettled(ctx.db, run.id),
        ]);
        return { status: 200, body: { ...run, ingestion: ingestion?.name ?? "", progress } };
      },
    }),
    defineRoute({
      method: "get",
      path: "/api/v1/runs/{id}/report",
      operationId: "getRunReport",
      summary: "A run's error-recovery report: totals, failures by error type with what to do, failed files",
      tag: "runs",
      role: "reader",
      params: RunParams,
      query: RunReportQuery,
      problems: ["not-found"],
      responses: { 200: { description: "The report", schema: RunReport } },
      handle: async ({ params, query }) => {
        const report = await runReport(ctx.db, params.id, { failureLimit: query.failures });
        if (report === undefined) throw noRun(params.id);
        return { status: 200, body: report };
      },
    }),
  ];
}
