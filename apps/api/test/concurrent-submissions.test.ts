/**
 * bench:submit in small (issue 10): producers submitting at once, some paths sent by two of them in the same
 * moment, over real HTTP against the real Postgres and Redis. Each path is registered once, gets one ingest
 * job, and is `accepted` in exactly one answer (`already_known` in the other).
 */
import { IngestQueue } from "@lakeferry/queue";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { call, ingestionSpec, landFiles, serviceEnv, startApi, TOKENS, type ApiSandbox } from "./support.ts";

const PRODUCERS = 12;
const PER_PRODUCER = 100;
/** Every 10th path of the next producer is sent by this one too. */
const SHARED_EVERY = 10;
const PER_REQUEST = 55;

interface Answer {
  accepted: number;
  alreadyKnown: number;
  refused: number;
}

describe("concurrent submissions", () => {
  let box: ApiSandbox;
  let queue: IngestQueue;
  let failed = false;
  const name = "landing";

  beforeEach(({ onTestFailed }) => onTestFailed(() => void (failed = true)));

  beforeAll(async () => {
    box = await startApi("concurrent");
    queue = new IngestQueue({ redisUrl: serviceEnv("REDIS_URL"), prefix: box.prefix });
    const applied = await call(box, "PUT", `/api/v1/ingestions/${name}`, {
      token: TOKENS.operator,
      body: ingestionSpec(box, name),
    });
    expect(applied.status, applied.text).toBe(201);
  });

  afterAll(async () => {
    await queue?.close();
    await box?.close(!failed);
  });

  it("registers each path once, with one job, accepted in one answer only", async () => {
    const names = Array.from(
      { length: PRODUCERS * PER_PRODUCER },
      (_, i) => `d${Math.floor(i / 100)}/p-${String(i).padStart(4, "0")}.json`,
    );
    await landFiles(box, names);
    const own = (p: number) => names.slice(p * PER_PRODUCER, (p + 1) * PER_PRODUCER);
    const requests = Array.from({ length: PRODUCERS }, (_, p) => {
      const paths = [...own(p), ...own((p + 1) % PRODUCERS).filter((_, i) => i % SHARED_EVERY === 0)];
      return Array.from({ length: Math.ceil(paths.length / PER_REQUEST) }, (_, r) =>
        paths.slice(r * PER_REQUEST, (r + 1) * PER_REQUEST),
      );
    });

    const answers = (
      await Promise.all(
        requests.map(async (mine, p) => {
          const got: Answer[] = [];
          for (const [r, paths] of mine.entries()) {
            const answer = await call<Answer>(box, "POST", `/api/v1/ingestions/${name}/files`, {
              token: TOKENS.producer,
              body: { requestId: `p${p}-r${r}`, files: paths.map((path) => ({ path })) },
            });
            expect(answer.status, answer.text).toBe(202);
            got.push(answer.body);
          }
          return got;
        }),
      )
    ).flat();

    const sum = (key: keyof Answer) => answers.reduce((total, answer) => total + answer[key], 0);
    expect(sum("refused")).toBe(0);
    expect(sum("accepted")).toBe(names.length);
    expect(sum("alreadyKnown")).toBe((PRODUCERS * PER_PRODUCER) / SHARED_EVERY);
    const { rows } = await box.db.pool.query<{ files: number; paths: number; versions: number }>(
      `SELECT count(*)::int AS files, count(DISTINCT file_path)::int AS paths, max(version) AS versions
         FROM processed_files`,
    );
    expect(rows[0]).toEqual({ files: names.length, paths: names.length, versions: 1 });
    expect((await queue.counts()).waiting).toBe(names.length);
  });
});
