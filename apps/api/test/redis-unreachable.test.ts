/**
 * Redis unreachable (issue 10 review): the queues' connection waits for Redis to come back, so the routes
 * that use the queues (submission, retry, discovery, apply/enable/disable, Bull Board's API) must answer
 * 503 with Retry-After instead of hanging, whether Redis is down before the request or goes down while
 * the request waits on it; a submission's registered files stay PENDING and are queued once Redis is
 * back. Readiness and /metrics answer within their deadlines. Against a redis-server of the test's own,
 * killed with SIGKILL.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { getFilesByIds, listFiles } from "@lakeferry/db";
import { IngestQueue, ingestJobId } from "@lakeferry/queue";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { call, ingestionSpec, landFiles, startApi, TOKENS, type Answer, type ApiSandbox } from "./support.ts";

const run = promisify(execFile);

/** A TCP port nothing listens on at the moment. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Polls `probe` until it returns true; fails naming `what` after `timeoutMs`. */
async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what}: not so within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A redis-server of this test's own on `port`, without persistence (a restart starts empty). */
class ThrowawayRedis {
  #child: ChildProcess | undefined;

  constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async cli(...args: string[]): Promise<string> {
    const { stdout } = await run("redis-cli", ["-p", String(this.port), ...args]);
    return stdout.trim();
  }

  async start(): Promise<void> {
    const child = spawn(
      "redis-server",
      ["--bind", "127.0.0.1", "--port", String(this.port), "--save", "", "--appendonly", "no"],
      { cwd: this.dir, stdio: "ignore" },
    );
    this.#child = child;
    await waitFor(`redis-server on ${this.port} answers`, async () => (await this.cli("ping")) === "PONG");
  }

  /** SIGKILL, as a crash: no goodbye to the clients. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
    this.#child = undefined;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }
}

/** A request that must be answered within `deadlineMs` (a hang fails the test with a clear message). */
async function answeredWithin<T>(what: string, deadlineMs: number, request: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${deadlineMs} ms`)), deadlineMs);
  });
  try {
    return await Promise.race([request, hang]);
  } finally {
    clearTimeout(timer);
  }
}

function expectRedisProblem(answer: Answer, where: string, detail: RegExp): void {
  expect(answer.status, `${where}: ${answer.text}`).toBe(503);
  expect(answer.contentType, where).toMatch(/^application\/problem\+json/);
  expect(answer.headers.get("retry-after"), where).toBe("5");
  expect((answer.body as { detail: string }).detail, where).toMatch(detail);
}

describe("Redis unreachable", () => {
  let redis: ThrowawayRedis;
  let box: ApiSandbox;
  let queue: IngestQueue;
  let dir: string;
  let failed = false;
  let ingestionId: number;
  const name = "events";
  const submit = (paths: string[]) =>
    call(box, "POST", `/api/v1/ingestions/${name}/files`, {
      token: TOKENS.producer,
      body: { files: paths.map((path) => ({ path })) },
    });

  beforeEach(({ onTestFailed }) => onTestFailed(() => void (failed = true)));

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "lakeferry-api-redis-"));
    redis = new ThrowawayRedis(await freePort(), dir);
    await redis.start();
    box = await startApi("redisdown", { redisUrl: redis.url, redisTimeoutMs: 2_000 });
    queue = new IngestQueue({ redisUrl: redis.url, prefix: box.prefix });
    const applied = await call(box, "PUT", `/api/v1/ingestions/${name}`, {
      token: TOKENS.operator,
      body: ingestionSpec(box, name),
    });
    expect(applied.status, applied.text).toBe(201);
    ingestionId = (applied.body as { id: number }).id;
    await landFiles(box, ["a.json", "b.json", "c.json"]);
  });

  afterAll(async () => {
    // Closing waits on the queues' connections, which wait for Redis: it comes back first.
    if (redis && !redis.running) await redis.start();
    await queue?.close();
    await box?.close(!failed);
    await redis?.kill();
    if (!failed) await rm(dir, { recursive: true, force: true });
  });

  it("answers 503 with Retry-After within seconds to every route that uses Redis while it is down", async () => {
    await redis.kill();
    const operator = { token: TOKENS.operator };
    const requests: [string, () => Promise<Answer>][] = [
      ["submit", () => submit(["a.json"])],
      ["retry", () => call(box, "POST", `/api/v1/ingestions/${name}/retry`, operator)],
      ["discover", () => call(box, "POST", `/api/v1/ingestions/${name}/runs`, operator)],
      [
        "apply",
        () => call(box, "PUT", `/api/v1/ingestions/${name}`, { ...operator, body: ingestionSpec(box, name) }),
      ],
      ["disable", () => call(box, "POST", `/api/v1/ingestions/${name}/disable`, operator)],
      ["Bull Board's API", () => call(box, "GET", "/admin/queues/api/queues", operator)],
    ];
    for (const [what, request] of requests) {
      const answer = await answeredWithin(what, 10_000, request());
      expectRedisProblem(
        answer,
        what,
        /^Redis is unreachable \(.+\); nothing was done: retry in a few seconds$/,
      );
    }
    // Nothing was registered, and routes that need only Postgres still answer.
    const files = await call<{ files: unknown[] }>(box, "GET", `/api/v1/ingestions/${name}/files`, operator);
    expect(files.status).toBe(200);
    expect(files.body.files).toEqual([]);
    const ingestion = await call<{ enabled: boolean }>(box, "GET", `/api/v1/ingestions/${name}`, operator);
    expect(ingestion.body.enabled).toBe(true);
    // Bull Board's page needs no Redis; its API does.
    expect((await call(box, "GET", "/admin/queues", operator)).status).toBe(200);

    const ready = await answeredWithin("/readyz", 10_000, call(box, "GET", "/readyz"));
    expect(ready.status).toBe(503);
    expect((ready.body as { checks: { redis: { status: string } } }).checks.redis.status).toBe("error");
    // A scrape succeeds without the queues' figures, and counts the failed read.
    const metrics = await answeredWithin(
      "/metrics",
      15_000,
      call(box, "GET", "/metrics", { token: TOKENS.reader }),
    );
    expect(metrics.status).toBe(200);
    expect(metrics.text).toMatch(/lakeferry_metrics_read_errors_total\{source="queues"\} [1-9]/);

    await redis.start();
    await waitFor(
      "submission served once Redis is back",
      async () => (await submit(["a.json"])).status === 202,
    );
  });

  it("answers 503 to a submission whose jobs wait on Redis when Redis dies; its files stay and are queued once Redis is back", async () => {
    // Writes wait (PING still answers): the submission registers its files and then waits to enqueue.
    await redis.cli("client", "pause", "60000", "write");
    const answer = submit(["b.json", "c.json"]);
    const pending = async () => {
      const files = await listFiles(box.db, ingestionId, { status: "PENDING" });
      return files.filter((file) => /\/[bc]\.json$/.test(file.filePath));
    };
    await waitFor("b.json and c.json registered PENDING", async () => (await pending()).length === 2);
    await redis.kill();

    const refused = await answeredWithin("submission", 15_000, answer);
    expectRedisProblem(
      refused,
      "submission",
      /^Redis stopped answering while the request waited on it \(.+\): retry in a few seconds; what it recorded in Postgres stands/,
    );
    const registered = await pending();
    expect(registered).toHaveLength(2);

    // Back (empty, as after a crash without persistence): the submission's own queue calls complete.
    await redis.start();
    const jobIds = registered.map((file) => ingestJobId({ fileId: file.id, version: file.version }));
    await waitFor("both files' jobs in the queue", async () => (await queue.liveJobIds(jobIds)).size === 2);
    const files = await getFilesByIds(
      box.db,
      registered.map((file) => file.id),
    );
    expect([...files.values()].map((file) => file.status)).toEqual(["PENDING", "PENDING"]);

    // The client's retry is harmless: the same files, already known, no second job.
    let again: Answer | undefined;
    await waitFor("the submission, retried, is served", async () => {
      again = await submit(["b.json", "c.json"]);
      return again.status !== 503;
    });
    expect(again?.status, again?.text).toBe(202);
    expect(again?.body).toMatchObject({ accepted: 0, alreadyKnown: 2, refused: 0 });
    expect((await queue.liveJobIds(jobIds)).size).toBe(2);
  });
});
