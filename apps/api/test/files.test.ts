/**
 * Path submission, file listing, one file's history and retries over the HTTP API (issue 10), against the
 * real Postgres and Redis: 202 with a result per path (refused ones named), 422 when every path is
 * refused, idempotence for a repeated requestId and an already registered path, cursor pagination.
 */
import { claimFiles, recordOutcomes } from "@lakeferry/db";
import { IngestQueue } from "@lakeferry/queue";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { FileDetail, FilePage, RetryResponse, SubmitFilesResponse } from "../src/schemas.ts";
import { call, ingestionSpec, landFiles, serviceEnv, startApi, TOKENS, type ApiSandbox } from "./support.ts";

interface Problem {
  status: number;
  type: string;
  detail: string;
  field?: string;
  errors?: { field: string }[];
}
type Result = { path: string; status: string; reason?: string; fileId?: number; fileStatus?: string };

function expectProblem(
  answer: { status: number; contentType: string; body: unknown },
  status: number,
  field?: string,
) {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  expect(answer.contentType).toMatch(/^application\/problem\+json/);
  const problem = answer.body as Problem;
  expect(problem.status).toBe(status);
  if (field !== undefined) {
    expect(problem.field).toBe(field);
    expect(problem.detail).toContain(field);
  }
  return problem;
}

describe("file routes", () => {
  let box: ApiSandbox;
  let queue: IngestQueue;
  let failed = false;
  const name = "events";
  let uris: string[];
  const submit = (body: unknown, token: string = TOKENS.producer) =>
    call(box, "POST", `/api/v1/ingestions/${name}/files`, { token, body });

  beforeEach(({ onTestFailed }) => onTestFailed(() => void (failed = true)));

  beforeAll(async () => {
    box = await startApi("files");
    queue = new IngestQueue({ redisUrl: serviceEnv("REDIS_URL"), prefix: box.prefix });
    const applied = await call(box, "PUT", `/api/v1/ingestions/${name}`, {
      token: TOKENS.operator,
      body: ingestionSpec(box, name),
    });
    expect(applied.status, applied.text).toBe(201);
    uris = await landFiles(box, ["a.json", "b.json", "sub/c.json", "sub/d.json", "x.csv"]);
  });

  afterAll(async () => {
    await queue?.close();
    await box?.close(!failed);
  });

  it("accepts paths inside the source and names each refused one (202)", async () => {
    expectProblem(await submit({ files: [{ path: "a.json" }] }, TOKENS.reader), 403);
    const answer = await submit({
      files: [
        { path: "a.json", size: 26 },
        { path: uris[1] },
        { path: "../outside.json" },
        { path: "missing.json" },
        { path: "x.csv" },
        { path: "a.json" },
      ],
    });
    expect(answer.status, answer.text).toBe(202);
    const body = SubmitFilesResponse.parse(answer.body);
    expect(body).toMatchObject({ accepted: 3, alreadyKnown: 0, refused: 3 });
    const results = body.results as Result[];
    expect(results.map((r) => [r.path, r.status])).toEqual([
      ["a.json", "accepted"],
      [uris[1], "accepted"],
      ["../outside.json", "refused"],
      ["missing.json", "refused"],
      ["x.csv", "refused"],
      ["a.json", "accepted"],
    ]);
    expect(results[2]!.reason).toMatch(/climbs out of the source/);
    expect(results[3]!.reason).toMatch(/no such object/);
    expect(results[4]!.reason).toMatch(/pattern/);
    expect(body.results[0]).toMatchObject({ uri: uris[0], version: 1 });
    expect(body.results[0]!.fileId).toBeGreaterThan(0);
    // One job per accepted file, as for discovered files.
    expect((await queue.counts()).waiting).toBe(2);

    const again = await submit({ files: [{ path: "a.json" }, { path: "sub/c.json" }] });
    expect(again.status).toBe(202);
    const second = SubmitFilesResponse.parse(again.body);
    expect(second).toMatchObject({ accepted: 1, alreadyKnown: 1, refused: 0 });
    expect(second.results[0]).toMatchObject({ status: "already_known", fileStatus: "PENDING" });
    expect(second.run).not.toBe(body.run);
    expect((await queue.counts()).waiting).toBe(3);
  });

  it("answers a repeated requestId as the first time, and refuses one reused for other paths (409)", async () => {
    const request = { requestId: "batch-0001", files: [{ path: "sub/d.json" }, { path: "nope.json" }] };
    const first = await submit(request);
    expect(first.status).toBe(202);
    expect(first.headers.get("idempotent-replayed")).toBe("false");
    const repeated = await submit(request);
    expect(repeated.status).toBe(202);
    expect(repeated.headers.get("idempotent-replayed")).toBe("true");
    expect(repeated.body).toEqual(first.body);
    expect(SubmitFilesResponse.parse(repeated.body)).toMatchObject({
      requestId: "batch-0001",
      accepted: 1,
      refused: 1,
    });
    const runs = await call<{ runs: unknown[] }>(box, "GET", `/api/v1/ingestions/${name}/runs`, {
      token: TOKENS.reader,
    });
    expect(runs.body.runs).toHaveLength(3); // the repeat made no run

    expectProblem(await submit({ requestId: "batch-0001", files: [{ path: "a.json" }] }), 409, "requestId");
  });

  it("answers 422, naming every refused path, when no path is accepted", async () => {
    const answer = await submit({
      requestId: "all-bad",
      files: [{ path: "../x.json" }, { path: "/etc/passwd" }],
    });
    const problem = expectProblem(answer, 422) as Problem & { results: Result[]; title: string };
    expect(problem.type).toBe("urn:lakeferry:problem:all-refused");
    expect(problem.title).toBe("Every path or file named was refused");
    expect(problem.detail).toMatch(/^every path was refused; the first: \.\.\/x\.json: /);
    expect(problem.results.map((r) => [r.path, r.status])).toEqual([
      ["../x.json", "refused"],
      ["/etc/passwd", "refused"],
    ]);
    expect(problem.results.every((r) => typeof r.reason === "string" && r.reason.length > 0)).toBe(true);
    // The same answer again for the same request.
    const repeated = await submit({
      requestId: "all-bad",
      files: [{ path: "../x.json" }, { path: "/etc/passwd" }],
    });
    expect(repeated.status).toBe(422);
    expect(repeated.body).toEqual(answer.body);
  });

  it("validates the submission, naming the field (400)", async () => {
    expectProblem(await submit({ files: [] }), 400, "files");
    expectProblem(await submit({ files: [{}] }), 400, "files[0].path");
    expectProblem(await submit({ files: [{ path: "a.json", size: -1 }] }), 400, "files[0].size");
    expectProblem(await submit({ files: [{ path: "a.json" }], extra: 1 }), 400, "extra");
    expectProblem(await submit({ requestId: "has space", files: [{ path: "a.json" }] }), 400, "requestId");
    const tooMany = Array.from({ length: 5_001 }, (_, i) => ({ path: `f${i}.json` }));
    expect(expectProblem(await submit({ files: tooMany }), 400, "files").detail).toContain("5000");
  });

  it("lists files with filters, a page at a time", async () => {
    const list = (query: string) =>
      call(box, "GET", `/api/v1/ingestions/${name}/files${query}`, { token: TOKENS.reader });
    const all = FilePage.parse((await list("")).body);
    expect(all.files.map((f) => f.filePath)).toEqual([uris[0], uris[1], uris[2], uris[3]]);
    expect(all.next).toBeNull();

    const pages: string[][] = [];
    let cursor = "";
    for (;;) {
      const page = FilePage.parse((await list(`?limit=3${cursor}`)).body);
      pages.push(page.files.map((f) => f.filePath));
      if (page.next === null) break;
      cursor = `&cursor=${page.next}`;
    }
    expect(pages).toEqual([[uris[0], uris[1], uris[2]], [uris[3]]]);

    expect(FilePage.parse((await list("?status=pending")).body).files).toHaveLength(4);
    expect(FilePage.parse((await list("?status=FAILED")).body).files).toHaveLength(0);
    expect(FilePage.parse((await list("?pathPrefix=sub/")).body).files.map((f) => f.filePath)).toEqual([
      uris[2],
      uris[3],
    ]);
    expect(
      FilePage.parse((await list(`?pathPrefix=${encodeURIComponent(`${box.sourceUri}b`)}`)).body).files,
    ).toHaveLength(1);
    const c = all.files[2]!;
    expect(FilePage.parse((await list(`?run=${c.runId}`)).body).files.map((f) => f.filePath)).toEqual([
      uris[2],
    ]);
    const future = new Date(Date.now() + 3_600_000).toISOString();
    expect(FilePage.parse((await list(`?since=${future}`)).body).files).toHaveLength(0);
    expect(FilePage.parse((await list(`?since=2000-01-01T00:00:00Z`)).body).files).toHaveLength(4);

    expectProblem(await list("?status=DONE"), 400, "status");
    expectProblem(await list("?since=yesterday"), 400, "since");
    expectProblem(await list("?cursor=bm9wZQ"), 400, "cursor");
    expectProblem(await list("?limit=1001"), 400, "limit");
    expectProblem(await list("?colour=red"), 400, "colour");
    expectProblem(await call(box, "GET", `/api/v1/ingestions/${name}/files`), 401);
  });

  it("shows one file with every version and attempt; retries FAILED files and refuses the others", async () => {
    const page = FilePage.parse(
      (await call(box, "GET", `/api/v1/ingestions/${name}/files`, { token: TOKENS.reader })).body,
    );
    const [a, b] = page.files;
    if (a === undefined || b === undefined) throw new Error("expected two files");
    // A worker's attempts, recorded directly: a fails, b lands.
    await claimFiles(box.db, {
      refs: [a, b].map((f) => ({ id: f.id, version: f.version })),
      worker: "w1",
      leaseMs: 60_000,
    });
    await recordOutcomes(box.db, {
      worker: "w1",
      outcomes: [
        {
          id: a.id,
          version: 1,
          status: "FAILED",
          errorType: "MALFORMED_RECORD",
          errorMessage: "bad json\n\tat x",
        },
        { id: b.id, version: 1, status: "SUCCESS", recordsIngested: 1 },
      ],
    });

    const detail = await call(box, "GET", `/api/v1/files/${a.id}`, { token: TOKENS.reader });
    expect(detail.status, detail.text).toBe(200);
    const file = FileDetail.parse(detail.body);
    expect(file).toMatchObject({
      id: a.id,
      ingestion: name,
      status: "FAILED",
      errorType: "MALFORMED_RECORD",
    });
    expect(file.versions.map((v) => [v.version, v.status])).toEqual([[1, "FAILED"]]);
    expect(file.attempts.map((t) => [t.attempt, t.worker, t.outcome, t.errorType])).toEqual([
      [1, "w1", "FAILED", "MALFORMED_RECORD"],
    ]);
    expectProblem(await call(box, "GET", "/api/v1/files/99999999", { token: TOKENS.reader }), 404);
    expectProblem(await call(box, "GET", "/api/v1/files/0", { token: TOKENS.reader }), 400, "id");

    const retry = (body?: unknown, token: string = TOKENS.operator) =>
      call(box, "POST", `/api/v1/ingestions/${name}/retry`, {
        token,
        ...(body !== undefined ? { body } : {}),
      });
    expectProblem(await retry({ fileIds: [a.id] }, TOKENS.producer), 403);
    expectProblem(await retry({ fileIds: ["x"] }), 400, "fileIds[0]");
    const waitingBefore = (await queue.counts()).waiting ?? 0;
    const mixed = await retry({ fileIds: [a.id, b.id, 99999999] });
    expect(mixed.status, mixed.text).toBe(200);
    const result = RetryResponse.parse(mixed.body);
    expect(result).toMatchObject({ queued: 1, files: [{ id: a.id, version: 1 }] });
    expect(result.refused.map((r) => r.fileId)).toEqual([b.id, 99999999]);
    expect(result.refused[0]!.reason).toMatch(/SUCCESS/);
    expect(result.refused[1]!.reason).toMatch(/no file with this id/);
    expect((await queue.counts()).waiting).toBe(waitingBefore + result.enqueued);
    const after = FileDetail.parse(
      (await call(box, "GET", `/api/v1/files/${a.id}`, { token: TOKENS.reader })).body,
    );
    expect(after.status).toBe("PENDING");

    // The same 422 as a submission whose every path is refused, with the reasons `lakeferry retry` gives.
    const refused = expectProblem(await retry({ fileIds: [b.id, a.id] }), 422) as Problem & {
      title: string;
      refused: { fileId: number; reason: string }[];
    };
    expect(refused.type).toBe("urn:lakeferry:problem:all-refused");
    expect(refused.title).toBe("Every path or file named was refused");
    const successReason =
      "it is SUCCESS: its rows are in the table already (retrying would write them twice)";
    expect(refused.detail).toBe(`every file named was refused; the first: ${b.id}: ${successReason}`);
    expect(refused.refused).toEqual([
      { fileId: b.id, reason: successReason },
      { fileId: a.id, reason: "it is PENDING: it is being ingested already" },
    ]);
    // Without ids: every FAILED file (none now).
    expect(RetryResponse.parse((await retry()).body)).toMatchObject({ queued: 0, refused: [] });
  });
});
