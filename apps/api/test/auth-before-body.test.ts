/**
 * The key is checked before the body is read (issue 10 review): a request without a key, with an unknown
 * one or with too small a role is answered 401/403 while its body is still arriving, and the connection
 * is closed instead of drained; a body is parsed (and its limit applied) only for a caller who may call
 * the route.
 */
import { request } from "node:http";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { call, startApi, TOKENS, type ApiSandbox } from "./support.ts";

interface EarlyAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: { status?: number; detail?: string };
}

/**
 * POSTs a JSON body that declares `declaredBytes` but sends only its first 64 KiB and then stalls: the
 * answer can only come before the body is read. Fails after `deadlineMs` without one.
 */
function postStalledBody(
  box: ApiSandbox,
  path: string,
  options: { authorization?: string; declaredBytes: number; deadlineMs?: number },
): Promise<EarlyAnswer> {
  const deadlineMs = options.deadlineMs ?? 10_000;
  return new Promise((resolve, reject) => {
    const req = request(`${box.url}${path}`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "content-length": String(options.declaredBytes),
        ...(options.authorization ? { authorization: options.authorization } : {}),
      },
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within ${deadlineMs} ms while the body was still being sent`));
    }, deadlineMs);
    req.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    req.on("response", (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => {
        clearTimeout(timer);
        req.destroy();
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: JSON.parse(text) as EarlyAnswer["body"],
        });
      });
    });
    req.write(`{"files":[${'{"path":"a.json"},'.repeat(4_000)}`);
  });
}

describe("authentication before the body", () => {
  let box: ApiSandbox;
  let failed = false;
  const submitPath = "/api/v1/ingestions/events/files";
  const retryPath = "/api/v1/ingestions/events/retry";

  beforeEach(({ onTestFailed }) => onTestFailed(() => void (failed = true)));

  beforeAll(async () => {
    box = await startApi("authbody");
  });

  afterAll(async () => {
    await box?.close(!failed);
  });

  it("answers 401 to a large POST without a key, or with an unknown one, before its body arrives", async () => {
    for (const authorization of [undefined, "Bearer not-a-key"]) {
      // 7 MB is under the body limit: parsed first, it would be read whole before any answer.
      const answer = await postStalledBody(box, submitPath, {
        declaredBytes: 7_000_000,
        ...(authorization ? { authorization } : {}),
      });
      expect(answer.status, authorization).toBe(401);
      expect(answer.headers["content-type"]).toMatch(/^application\/problem\+json/);
      expect(answer.headers["www-authenticate"]).toMatch(/^Bearer/);
      expect(answer.headers.connection).toBe("close");
      expect(answer.body.status).toBe(401);
    }
  });

  it("answers 403 to a key whose role is too small, before its body arrives", async () => {
    const answer = await postStalledBody(box, retryPath, {
      authorization: `Bearer ${TOKENS.producer}`,
      declaredBytes: 7_000_000,
    });
    expect(answer.status).toBe(403);
    expect(answer.headers.connection).toBe("close");
    expect(answer.body.detail).toBe("this needs role operator or above; the API key has role producer");
  });

  it("refuses by key before judging the body: malformed or over the limit is 401/403, not 400/413", async () => {
    const malformed = "{not json";
    expect((await call(box, "POST", submitPath, { rawBody: malformed })).status).toBe(401);
    expect((await call(box, "POST", retryPath, { rawBody: malformed, token: TOKENS.reader })).status).toBe(
      403,
    );
    const overLimit = await postStalledBody(box, submitPath, { declaredBytes: 100_000_000 });
    expect(overLimit.status).toBe(401);

    // A caller who may call the route has the body parsed and judged.
    const parsed = await call(box, "POST", submitPath, { rawBody: malformed, token: TOKENS.producer });
    expect(parsed.status, parsed.text).toBe(400);
    expect((parsed.body as { detail: string }).detail).toMatch(/^body: is not valid JSON/);
    // (body-parser answers 413 once the body has arrived, so this one is sent whole.)
    const tooLarge = await call(box, "POST", submitPath, {
      rawBody: " ".repeat(9_000_000),
      token: TOKENS.producer,
    });
    expect(tooLarge.status, tooLarge.text).toBe(413);
  });

  it("serves a full request from a client that sends its whole body, refused or not", async () => {
    const body = {
      files: Array.from({ length: 5_000 }, (_, i) => ({ path: `${"d/".repeat(400)}${i}.json` })),
    };
    const refused = await call(box, "POST", submitPath, { body });
    expect(refused.status).toBe(401);
    // An ingestion that does not exist: the body was parsed and validated, and the route ran.
    const served = await call(box, "POST", submitPath, { body, token: TOKENS.producer });
    expect(served.status, served.text).toBe(404);
  });
});
