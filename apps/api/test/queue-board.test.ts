/**
 * Bull Board at /admin/queues (issue 10): every lakeferry queue, 401 without a key (with a Basic challenge
 * so that a browser asks), read-only below role operator, retry and promote (and nothing else) for
 * operators.
 */
import { INGEST_QUEUE, IngestQueue, ingestJobId, QUEUE_NAMES } from "@lakeferry/queue";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { call, serviceEnv, startApi, TOKENS, type ApiSandbox } from "./support.ts";

const basic = (token: string) => ({
  authorization: `Basic ${Buffer.from(`anyone:${token}`).toString("base64")}`,
});

describe("Bull Board", () => {
  let box: ApiSandbox;
  let failed = false;

  beforeEach(({ onTestFailed }) => onTestFailed(() => void (failed = true)));

  beforeAll(async () => {
    box = await startApi("board");
  });

  afterAll(async () => {
    await box?.close(!failed);
  });

  it("lets operators retry and promote jobs, and refuses every other action (403 naming what is allowed)", async () => {
    const queue = new IngestQueue({ redisUrl: serviceEnv("REDIS_URL"), prefix: box.prefix });
    try {
      const job = { fileId: 7, version: 1, ingestionId: 1 };
      expect(await queue.enqueue([{ data: job, retry: { attempts: 1, backoffMs: 100 } }])).toBe(1);
      const jobId = ingestJobId(job);
      const base = `/admin/queues/api/queues/${INGEST_QUEUE}`;
      const refused: [string, string][] = [
        ["PUT", `${base}/clean/waiting`],
        ["PUT", `${base}/clean/failed`],
        ["PUT", `${base}/${jobId}/clean`],
        ["PUT", `${base}/CLEAN/promote`],
        ["PUT", `${base}/clean/retry`],
        ["PUT", `${base}/empty`],
        ["PUT", `${base}/obliterate`],
        ["PUT", `${base}/pause`],
        ["PUT", "/admin/queues/api/queues/pause"],
        ["PUT", `${base}/promote/`],
        ["POST", `${base}/add`],
        ["PATCH", `${base}/${jobId}/update-data`],
        ["DELETE", `${base}/${jobId}`],
      ];
      for (const [method, path] of refused) {
        const answer = await call(box, method, path, { token: TOKENS.operator, body: {} });
        expect(answer.status, `${method} ${path}: ${answer.text}`).toBe(403);
        expect(answer.contentType).toMatch(/^application\/problem\+json/);
        expect((answer.body as { detail: string }).detail).toBe(
          `Bull Board lets operators read, retry and promote jobs only; ${method} ${path} is refused ` +
            "(to queue files again use lakeferry retry or POST /api/v1/ingestions/{name}/retry)",
        );
      }
      // Nothing was removed.
      expect(await queue.liveJobIds([jobId])).toEqual(new Set([jobId]));

      // Retry and promote reach Bull Board: a queue's failed jobs, its delayed ones, and one job (which
      // Bull Board answers for itself: this one is waiting, not failed).
      for (const path of [`${base}/retry/failed`, `${base}/promote`]) {
        const answer = await call(box, "PUT", path, { token: TOKENS.operator });
        expect(answer.status, `${path}: ${answer.text}`).toBe(200);
      }
      const one = await call(box, "PUT", `${base}/${jobId}/retry`, { token: TOKENS.operator });
      expect(one.status, one.text).toBe(400);
      expect(one.text).toContain("ERRORS.JOB_NOT_RETRIABLE");
      const missing = await call(box, "PUT", `${base}/no-such-job/promote`, { token: TOKENS.operator });
      expect(missing.status, missing.text).toBe(404);
      expect(missing.text).toContain("ERRORS.JOB_NOT_FOUND");
    } finally {
      await queue.close();
    }
  });

  it("answers 401 without a key, asking a browser for HTTP Basic", async () => {
    for (const path of [
      "/admin/queues",
      "/admin/queues/api/queues",
      "/admin/queues/static/favicon-32x32.png",
    ]) {
      const answer = await call(box, "GET", path);
      expect(answer.status, path).toBe(401);
      expect(answer.headers.get("www-authenticate"), path).toMatch(/Basic realm="lakeferry"/);
    }
    expect((await call(box, "GET", "/admin/queues", { headers: basic("wrong") })).status).toBe(401);
  });

  it("serves the UI with an operator key (bearer or Basic) and lists every lakeferry queue", async () => {
    const page = await call(box, "GET", "/admin/queues", { token: TOKENS.operator });
    expect(page.status).toBe(200);
    expect(page.contentType).toMatch(/^text\/html/);
    expect(page.text).toContain('<base href="/admin/queues/"');
    expect(page.text).toContain("<title>lakeferry</title>");
    const asset = page.text.match(/src="([^"]+\.js)"/)?.[1];
    expect(asset).toBeDefined();
    // The UI's own files come from @bull-board/ui's package folder.
    const script = await call(box, "GET", new URL(asset!, `${box.url}/admin/queues/`).pathname, {
      headers: basic(TOKENS.reader),
    });
    expect(script.status).toBe(200);

    const queues = await call<{ queues: { name: string; readOnlyMode: boolean }[] }>(
      box,
      "GET",
      "/admin/queues/api/queues",
      { headers: basic(TOKENS.operator) },
    );
    expect(queues.status).toBe(200);
    expect(queues.body.queues.map((q) => q.name).sort()).toEqual([...QUEUE_NAMES].sort());
    expect(queues.body.queues.every((q) => !q.readOnlyMode)).toBe(true);
  });

  it("is read-only for readers and producers; operators may act", async () => {
    for (const role of ["reader", "producer"] as const) {
      const queues = await call<{ queues: { readOnlyMode: boolean }[] }>(
        box,
        "GET",
        "/admin/queues/api/queues",
        {
          headers: basic(TOKENS[role]),
        },
      );
      expect(queues.status).toBe(200);
      expect(queues.body.queues.every((q) => q.readOnlyMode)).toBe(true);
      const promote = await call(box, "PUT", `/admin/queues/api/queues/${QUEUE_NAMES[0]}/promote`, {
        headers: basic(TOKENS[role]),
      });
      expect(promote.status, promote.text).toBe(405);
    }
    const promote = await call(box, "PUT", `/admin/queues/api/queues/${QUEUE_NAMES[0]}/promote`, {
      token: TOKENS.operator,
    });
    expect(promote.status, promote.text).toBe(200);
  });
});
