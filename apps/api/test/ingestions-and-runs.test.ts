/**
 * The HTTP API's ingestion, run and health routes (issue 10), over real HTTP against the real Postgres,
 * Redis and Spark: each route's success path and its refusals (401, 403, 400 naming the field, 404).
 */
import { DiscoveryQueue } from "@lakeferry/queue";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  DiscoveryResult,
  Ingestion,
  IngestionDetail,
  Readiness,
  RunDetail,
  RunReport,
  SchemaApproval,
  SchemaChangeList,
} from "../src/schemas.ts";
import { call, ingestionSpec, landFiles, serviceEnv, startApi, TOKENS, type ApiSandbox } from "./support.ts";
// The strict parser the metrics package tests its own output with.
import { parsePrometheusText, sampleValue } from "../../../packages/metrics/test/prometheus-text.ts";

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  field?: string;
  errors?: { field: string; in: string; message: string }[];
}

/** A problem+json answer with this status (and, for a 400, naming this field). */
function expectProblem(
  answer: { status: number; contentType: string; body: unknown },
  status: number,
  field?: string,
) {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  expect(answer.contentType).toMatch(/^application\/problem\+json/);
  const problem = answer.body as Problem;
  expect(problem.status).toBe(status);
  expect(problem.type).toMatch(/^urn:lakeferry:problem:/);
  expect(problem.title).toEqual(expect.any(String));
  expect(problem.detail).toEqual(expect.any(String));
  if (field !== undefined) {
    expect(problem.field).toBe(field);
    expect(problem.errors?.map((error) => error.field)).toContain(field);
    expect(problem.detail).toContain(field);
  }
  return problem;
}

describe("ingestion, run and health routes", () => {
  let box: ApiSandbox;
  let discovery: DiscoveryQueue;
  let failed = false;
  const name = "orders";

  beforeEach(({ onTestFailed }) => onTestFailed(() => void (failed = true)));

  beforeAll(async () => {
    // A generous deadline: the first check opens a Spark session, slow on a busy machine.
    box = await startApi("ingestions", { readyTimeoutMs: 20_000 });
    discovery = new DiscoveryQueue({ redisUrl: serviceEnv("REDIS_URL"), prefix: box.prefix });
  });

  afterAll(async () => {
    await discovery?.close();
    await box?.close(!failed);
  });

  it("/healthz and /readyz answer without a key; /readyz reports Postgres, Redis and Spark", async () => {
    expect((await call(box, "GET", "/healthz")).body).toEqual({ status: "ok" });
    const ready = await call(box, "GET", "/readyz");
    expect(ready.status, ready.text).toBe(200);
    const body = Readiness.parse(ready.body);
    expect(body.status).toBe("ok");
    expect(Object.values(body.checks).map((check) => check.status)).toEqual(["ok", "ok", "ok"]);
  });

  it("/metrics needs a reader key and reports the queues' backlog in Prometheus' text format", async () => {
    expect((await call(box, "GET", "/metrics")).status).toBe(401);
    const scraped = await call(box, "GET", "/metrics", { token: TOKENS.reader });
    expect(scraped.status).toBe(200);
    expect(scraped.contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parsePrometheusText(scraped.text);
    expect(
      sampleValue(families, "lakeferry_queue_jobs", { queue: "lakeferry-ingest", state: "waiting" }),
    ).toEqual(expect.any(Number));
    expect(sampleValue(families, "process_cpu_user_seconds_total")).toEqual(expect.any(Number));
  });

  it("/readyz answers 503 naming Spark when Spark does not answer", async () => {
    const other = await startApi("notready", { sparkRemote: "sc://127.0.0.1:9", readyTimeoutMs: 1_500 });
    try {
      const ready = await call(other, "GET", "/readyz");
      expect(ready.status).toBe(503);
      const body = Readiness.parse(ready.body);
      expect(body.status).toBe("unavailable");
      expect(body.checks.postgres.status).toBe("ok");
      expect(body.checks.redis.status).toBe("ok");
      expect(body.checks.spark.status).toBe("error");
      expect(body.checks.spark.error).toEqual(expect.any(String));
    } finally {
      await other.close(true);
    }
  });

  it("needs a key (401 with a challenge), and the right role (403)", async () => {
    const none = await call(box, "GET", "/api/v1/ingestions");
    expectProblem(none, 401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer /);
    const unknown = await call(box, "GET", "/api/v1/ingestions", { token: "not-a-key" });
    expectProblem(unknown, 401);
    expect(unknown.headers.get("www-authenticate")).toMatch(/^Bearer /);
    // Only the Basic scheme of Bull Board carries a token elsewhere than a bearer header.
    const basic = await call(box, "GET", "/api/v1/ingestions", {
      headers: { authorization: `Basic ${Buffer.from(`x:${TOKENS.operator}`).toString("base64")}` },
    });
    expectProblem(basic, 401);
    for (const role of ["reader", "producer"] as const) {
      const refused = await call(box, "PUT", `/api/v1/ingestions/${name}`, {
        token: TOKENS[role],
        body: ingestionSpec(box, name),
      });
      const problem = expectProblem(refused, 403);
      expect(problem.detail).toContain(`role ${role}`);
    }
    expect((await call(box, "GET", "/api/v1/ingestions", { token: TOKENS.reader })).body).toEqual({
      ingestions: [],
    });
  });

  it("applies an ingestion: 201 then 200, checked as `lakeferry ingestion apply` checks it", async () => {
    const spec = ingestionSpec(box, name, { schedule: "*/5 * * * *" });
    const created = await call(box, "PUT", `/api/v1/ingestions/${name}`, {
      token: TOKENS.operator,
      body: spec,
    });
    expect(created.status, created.text).toBe(201);
    expect(created.headers.get("location")).toBe(`/api/v1/ingestions/${name}`);
    expect(Ingestion.parse(created.body)).toMatchObject({
      name,
      sourceUri: box.sourceUri,
      glob: "**/*.json",
      maxAttempts: 2,
      enabled: true,
      schedule: "*/5 * * * *",
    });
    const updated = await call(box, "PUT", `/api/v1/ingestions/${name}`, {
      token: TOKENS.operator,
      body: { ...spec, retry: { attempts: 4, backoffMs: 100 } },
    });
    expect(updated.status).toBe(200);
    expect((updated.body as { maxAttempts: number }).maxAttempts).toBe(4);
    expect((await discovery.schedules()).map((s) => s.cron)).toEqual(["*/5 * * * *"]);

    const put = (body: unknown, rawBody?: string) =>
      call(box, "PUT", `/api/v1/ingestions/${name}`, {
        token: TOKENS.operator,
        ...(rawBody !== undefined ? { rawBody } : { body }),
      });
    expect(
      expectProblem(await put({ ...spec, retry: { attempts: 0 } }), 400, "retry.attempts").detail,
    ).toContain("at least 1");
    expectProblem(await put({ ...spec, colour: "blue" }), 400, "colour");
    expectProblem(await put({ ...spec, table: "orders" }), 400, "table");
    expectProblem(await put({ ...spec, source: "ftp://x/y/" }), 400, "source");
    expectProblem(await put({ ...spec, name: "other" }), 400, "name");
    expectProblem(await put(undefined, "{ not json"), 400, "body");
    const noBody = await call(box, "PUT", `/api/v1/ingestions/${name}`, { token: TOKENS.operator });
    expectProblem(noBody, 400, "body");
  });

  it("lists and gets ingestions; an unknown one is a 404", async () => {
    const list = await call<{ ingestions: unknown[] }>(box, "GET", "/api/v1/ingestions", {
      token: TOKENS.reader,
    });
    expect(list.body.ingestions.map((i) => Ingestion.parse(i).name)).toEqual([name]);
    const one = await call(box, "GET", `/api/v1/ingestions/${name}`, { token: TOKENS.reader });
    expect(IngestionDetail.parse(one.body).files).toEqual({
      PENDING: 0,
      PROCESSING: 0,
      SUCCESS: 0,
      FAILED: 0,
      SKIPPED: 0,
    });
    const missing = expectProblem(
      await call(box, "GET", "/api/v1/ingestions/nope", { token: TOKENS.reader }),
      404,
    );
    expect(missing.detail).toContain('"nope"');
    for (const [method, path] of [
      ["POST", "/api/v1/ingestions/nope/enable"],
      ["POST", "/api/v1/ingestions/nope/runs"],
      ["GET", "/api/v1/ingestions/nope/runs"],
      ["GET", "/api/v1/ingestions/nope/files"],
      ["POST", "/api/v1/ingestions/nope/retry"],
    ] as const) {
      expectProblem(await call(box, method, path, { token: TOKENS.operator }), 404);
    }
  });

  it("lists schema changes (reader) and approves them (operator only); nothing pending approves nothing", async () => {
    const listed = await call(box, "GET", `/api/v1/ingestions/${name}/schema-changes?all=true`, {
      token: TOKENS.reader,
    });
    const changes = SchemaChangeList.parse(listed.body);
    expect(changes.table).toMatch(/^lake\./);
    expect(changes.changes).toEqual([]);
    expectProblem(
      await call(box, "GET", `/api/v1/ingestions/${name}/schema-changes?all=yes`, { token: TOKENS.reader }),
      400,
      "all",
    );
    expectProblem(
      await call(box, "POST", `/api/v1/ingestions/${name}/schema-changes/approve`, {
        token: TOKENS.producer,
      }),
      403,
    );
    const approved = await call(box, "POST", `/api/v1/ingestions/${name}/schema-changes/approve`, {
      token: TOKENS.operator,
    });
    expect(approved.status).toBe(200);
    expect(SchemaApproval.parse(approved.body)).toEqual({ approved: [], added: [], requeued: 0 });
    expectProblem(
      await call(box, "POST", "/api/v1/ingestions/nope/schema-changes/approve", { token: TOKENS.operator }),
      404,
    );
  });

  it("disables and enables an ingestion, removing and restoring its discovery schedule", async () => {
    expectProblem(
      await call(box, "POST", `/api/v1/ingestions/${name}/disable`, { token: TOKENS.producer }),
      403,
    );
    const disabled = await call(box, "POST", `/api/v1/ingestions/${name}/disable`, {
      token: TOKENS.operator,
    });
    expect(disabled.status).toBe(200);
    expect(Ingestion.parse(disabled.body).enabled).toBe(false);
    expect(await discovery.schedules()).toEqual([]);
    const enabled = await call(box, "POST", `/api/v1/ingestions/${name}/enable`, { token: TOKENS.operator });
    expect(Ingestion.parse(enabled.body).enabled).toBe(true);
    expect((await discovery.schedules()).map((s) => s.cron)).toEqual(["*/5 * * * *"]);
  });

  it("runs a discovery pass, lists runs, shows one with its progress and its report", async () => {
    await landFiles(box, ["2026/a.json", "2026/b.json", "2026/c.json", "notes.txt"]);
    expectProblem(await call(box, "POST", `/api/v1/ingestions/${name}/runs`, { token: TOKENS.reader }), 403);
    expectProblem(
      await call(box, "POST", `/api/v1/ingestions/${name}/runs`, {
        token: TOKENS.operator,
        body: { full: "yes" },
      }),
      400,
      "full",
    );
    const pass = await call(box, "POST", `/api/v1/ingestions/${name}/runs`, { token: TOKENS.operator });
    expect(pass.status, pass.text).toBe(201);
    const result = DiscoveryResult.parse(pass.body);
    expect(result).toMatchObject({ found: 3, created: 3, modified: 0, enqueued: 3 });
    expect(result.run).toMatchObject({ trigger: "manual", status: "succeeded", filesNew: 3 });
    expect(pass.headers.get("location")).toBe(`/api/v1/runs/${result.run.id}`);

    const runs = await call<{ runs: { id: number }[] }>(
      box,
      "GET",
      `/api/v1/ingestions/${name}/runs?limit=5`,
      {
        token: TOKENS.reader,
      },
    );
    expect(runs.body.runs.map((run) => run.id)).toEqual([result.run.id]);
    expectProblem(
      await call(box, "GET", `/api/v1/ingestions/${name}/runs?limit=0`, { token: TOKENS.reader }),
      400,
      "limit",
    );

    const run = await call(box, "GET", `/api/v1/runs/${result.run.id}`, { token: TOKENS.reader });
    expect(RunDetail.parse(run.body)).toMatchObject({
      id: result.run.id,
      ingestion: name,
      progress: { total: 3, settled: 0, failed: 0 },
    });
    const report = await call(box, "GET", `/api/v1/runs/${result.run.id}/report`, { token: TOKENS.reader });
    expect(report.status, report.text).toBe(200);
    expect(RunReport.parse(report.body)).toMatchObject({
      run: { id: result.run.id },
      ingestion: { name },
      totals: { files: 3, success: 0, failed: 0, pending: 3 },
      failures: [],
    });

    expectProblem(await call(box, "GET", "/api/v1/runs/987654", { token: TOKENS.reader }), 404);
    expectProblem(await call(box, "GET", "/api/v1/runs/987654/report", { token: TOKENS.reader }), 404);
    expectProblem(await call(box, "GET", "/api/v1/runs/abc", { token: TOKENS.reader }), 400, "id");
    expectProblem(
      await call(box, "GET", `/api/v1/runs/${result.run.id}/report?failures=-1`, { token: TOKENS.reader }),
      400,
      "failures",
    );
  });

  it("answers 405 with Allow for another method of a known path, and 404 for an unknown path", async () => {
    const wrong = await call(box, "DELETE", `/api/v1/ingestions/${name}`, { token: TOKENS.operator });
    expectProblem(wrong, 405);
    expect(wrong.headers.get("allow")).toBe("GET, PUT, HEAD");
    expectProblem(await call(box, "GET", "/api/v1/nothing-here", { token: TOKENS.operator }), 404);
  });
});
