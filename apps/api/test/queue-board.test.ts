/**
 * Bull Board at /admin/queues (issue 10): every lakeferry queue, 401 without a key (with a Basic challenge
 * so that a browser asks), read-only below role operator, actions for operators.
 */
import { QUEUE_NAMES } from "@lakeferry/queue";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { call, startApi, TOKENS, type ApiSandbox } from "./support.ts";

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
