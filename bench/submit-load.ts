/**
 * Path submission under load (issue 10), measured in one run on this machine:
 *   1. raw BullMQ: PRODUCERS concurrent producers add PATHS jobs with `addBulk`, PER_REQUEST at a time
 *      (the ceiling: what handing paths over would cost with no registration at all);
 *   2. the HTTP API: the same producers POST PATHS other paths to `lakeferry api`
 *      (`POST /api/v1/ingestions/{name}/files`, PER_REQUEST paths a request, each with a requestId);
 *   3. the `lakeferry-submit` queue: the same producers add `submit-paths` jobs of PER_REQUEST paths, which a
 *      `lakeferry worker` registers (its ingest queue paused, so no file is written: registration only).
 * Each path is a file that exists in a local source, and 2 % of them are sent by two producers at once.
 * The baseline (1) is measured right before (2) and again right before (3), as the machine's load drifts.
 * Prints paths/s, the ratio to (1), and p50/p99 latency (a request's answer; a job's add to its
 * completion), then checks that every path was registered exactly once and has exactly one ingest job.
 *
 *   npm run bench:submit -- [paths=100000] [producers=50] [perRequest=500] [submitConcurrency=8]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { createLogger } from "@lakeferry/core";
import { createDatabase, migrate, type Database } from "@lakeferry/db";
import { applyIngestion, parseIngestionSpec } from "@lakeferry/pipeline";
import { INGEST_QUEUE, IngestQueue, SUBMIT_JOB_NAME, SUBMIT_QUEUE } from "@lakeferry/queue";
import { need } from "./service-env.ts";

const [paths, producers, perRequest, submitConcurrency] = [100_000, 50, 500, 8].map((fallback, i) => {
  const arg = process.argv[2 + i];
  return arg === undefined ? fallback : Number(arg);
}) as [number, number, number, number];
/** Every 50th path is also sent by the next producer, in the same round. */
const SHARED_EVERY = 50;

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const BIN = join(ROOT, "apps/cli/bin/lakeferry.js");
const databaseUrl = need("DATABASE_URL");
const redisUrl = need("REDIS_URL");
const sparkRemote = need("SPARK_REMOTE");

const id = randomBytes(4).toString("hex");
const schema = `bench_${id}`;
const prefix = `bench-${id}`;
const token = randomBytes(16).toString("hex");
/** Node options for the lakeferry processes, to profile them under load: BENCH_NODE_ARGS="--cpu-prof". */
const nodeArgs = (process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean);

/** The requests (or jobs) of each producer: its own slice of paths, plus every 50th path of the next one. */
function plan(names: readonly string[]): string[][][] {
  const slice = Math.ceil(names.length / producers);
  const own = Array.from({ length: producers }, (_, p) => names.slice(p * slice, (p + 1) * slice));
  return own.map((mine, p) => {
    const shared = (own[(p + 1) % producers] ?? []).filter((_, i) => i % SHARED_EVERY === 0);
    const all = [...mine, ...shared];
    const requests: string[][] = [];
    for (let start = 0; start < all.length; start += perRequest)
      requests.push(all.slice(start, start + perRequest));
    return requests;
  });
}

function relativeName(i: number): string {
  return `d${String(Math.floor(i / 1_000)).padStart(3, "0")}/part-${String(i % 1_000).padStart(4, "0")}.json`;
}

async function makeSource(dir: string, count: number): Promise<string[]> {
  const names = Array.from({ length: count }, (_, i) => relativeName(i));
  for (let d = 0; d * 1_000 < count; d++)
    await mkdir(join(dir, `d${String(d).padStart(3, "0")}`), { recursive: true });
  for (let start = 0; start < count; start += 2_000) {
    await Promise.all(
      names.slice(start, start + 2_000).map((name, i) => writeFile(join(dir, name), `{"n":${start + i}}\n`)),
    );
  }
  return names;
}

interface Measured {
  seconds: number;
  /** Milliseconds, one per request or job. */
  latencies: number[];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function timed(run: () => Promise<number[]>): Promise<Measured> {
  const started = process.hrtime.bigint();
  const latencies = await run();
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, latencies };
}

/** Runs each producer's requests in turn, all producers at once; the latencies of every request. */
async function producing(
  requests: string[][][],
  send: (producer: number, n: number, paths: string[]) => Promise<number>,
): Promise<number[]> {
  const latencies: number[][] = await Promise.all(
    requests.map(async (mine, p) => {
      const own: number[] = [];
      for (const [n, batch] of mine.entries()) own.push(await send(p, n, batch));
      return own;
    }),
  );
  return latencies.flat();
}

async function rawAddBulk(names: readonly string[], queueName: string): Promise<Measured> {
  const queuePrefix = `${prefix}-raw`;
  const connections = Array.from(
    { length: producers },
    () => new Redis(redisUrl, { maxRetriesPerRequest: null }),
  );
  const queues = connections.map((connection) => new Queue(queueName, { connection, prefix: queuePrefix }));
  await Promise.all(queues.map((queue) => queue.waitUntilReady()));
  try {
    return await timed(() =>
      producing(plan(names), async (p, _n, batch) => {
        const started = performance.now();
        await queues[p]!.addBulk(
          batch.map((path) => ({
            name: "ingest-file",
            data: { path },
            opts: {
              jobId: createHash("sha1").update(path).digest("hex"),
              removeOnComplete: { count: 1_000 },
            },
          })),
        );
        return performance.now() - started;
      }),
    );
  } finally {
    await Promise.all(queues.map((queue) => queue.close()));
    await Promise.all(connections.map((connection) => connection.quit()));
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

/** Starts `lakeferry <command>` as installed and resolves once its log says `readyLine`. */
async function startLakeferry(
  command: string,
  env: Record<string, string>,
  readyLine: string,
  logFile: string,
): Promise<ChildProcess> {
  const child = spawn(process.execPath, [...nodeArgs, BIN, command], {
    cwd: ROOT,
    env: {
      ...process.env,
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      SPARK_REMOTE: sparkRemote,
      LAKEFERRY_DB_SCHEMA: schema,
      LAKEFERRY_QUEUE_PREFIX: prefix,
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const log = createWriteStream(logFile);
  child.stderr.pipe(log);
  await new Promise<void>((resolvePromise, reject) => {
    let buffered = "";
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString("utf8");
      if (buffered.includes(`"msg":"${readyLine}"`)) {
        child.stderr.off("data", onData);
        resolvePromise();
      }
    };
    child.stderr.on("data", onData);
    child.once("exit", (code) =>
      reject(new Error(`lakeferry ${command} exited ${code} before ready; see ${logFile}`)),
    );
    setTimeout(
      () => reject(new Error(`lakeferry ${command} not ready in 60 s; see ${logFile}`)),
      60_000,
    ).unref();
  });
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.kill("SIGTERM");
  await once(child, "exit");
}

interface SubmitAnswer {
  accepted?: number;
  alreadyKnown?: number;
  refused?: number;
}

/** 503s answered (Redis unreachable, or taken for it), each retried after its Retry-After as a producer would. */
let unavailable = 0;

async function throughApi(names: readonly string[], baseUrl: string): Promise<Measured> {
  let refused = 0;
  const post = async (body: string): Promise<SubmitAnswer> => {
    for (;;) {
      const response = await fetch(`${baseUrl}/api/v1/ingestions/load-api/files`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body,
      });
      const answer = (await response.json()) as SubmitAnswer & { detail?: string };
      if (response.status === 202) return answer;
      if (response.status !== 503) {
        throw new Error(`POST files answered ${response.status}: ${JSON.stringify(answer).slice(0, 300)}`);
      }
      unavailable += 1;
      console.log(`  503 (retried): ${answer.detail ?? ""}`);
      await new Promise((r) => setTimeout(r, 1_000 * Number(response.headers.get("retry-after") ?? 1)));
    }
  };
  const measured = await timed(() =>
    producing(plan(names), async (p, n, batch) => {
      const started = performance.now();
      const answer = await post(
        JSON.stringify({ requestId: `producer-${p}-${n}`, files: batch.map((path) => ({ path })) }),
      );
      refused += answer.refused ?? 0;
      return performance.now() - started;
    }),
  );
  if (refused > 0) throw new Error(`the API refused ${refused} paths`);
  return measured;
}

async function throughSubmitQueue(names: readonly string[]): Promise<Measured> {
  const connections = Array.from(
    { length: producers },
    () => new Redis(redisUrl, { maxRetriesPerRequest: null }),
  );
  const queues = connections.map((connection) => new Queue(SUBMIT_QUEUE, { connection, prefix }));
  await Promise.all(queues.map((queue) => queue.waitUntilReady()));
  try {
    const jobIds: string[] = [];
    const started = process.hrtime.bigint();
    await producing(plan(names), async (p, n, batch) => {
      const job = await queues[p]!.add(
        SUBMIT_JOB_NAME,
        { ingestion: "load-queue", paths: batch },
        { jobId: `producer-${p}-${n}` },
      );
      jobIds.push(job.id!);
      return 0;
    });
    const watcher = queues[0]!;
    const deadline = Date.now() + 900_000;
    for (;;) {
      const counts = await watcher.getJobCounts(
        "waiting",
        "active",
        "delayed",
        "prioritized",
        "failed",
        "completed",
      );
      if (counts.failed) throw new Error(`${counts.failed} submit-paths jobs failed`);
      if (counts.completed === jobIds.length) break;
      if (Date.now() > deadline)
        throw new Error(`submit-paths jobs not done in 15 minutes: ${JSON.stringify(counts)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const latencies: number[] = [];
    let refused = 0;
    for (const jobId of jobIds) {
      const job = await watcher.getJob(jobId);
      if (!job?.finishedOn) throw new Error(`job ${jobId} has no finish time`);
      latencies.push(job.finishedOn - job.timestamp);
      refused += (job.returnvalue as { refused: number }).refused;
    }
    if (refused > 0) throw new Error(`the submit queue refused ${refused} paths`);
    return { seconds, latencies };
  } finally {
    await Promise.all(queues.map((queue) => queue.close()));
    await Promise.all(connections.map((connection) => connection.quit()));
  }
}

/** Every path registered once, each with one ingest job (version 1: nothing changed). */
async function checkRegistered(db: Database, ingestion: string, names: readonly string[]): Promise<void> {
  const { rows } = await db.pool.query<{ files: string; paths: string; versions: string; runs: string }>(
    `SELECT count(*) AS files, count(DISTINCT f.file_path) AS paths, max(f.version) AS versions,
            count(DISTINCT f.run_id) AS runs
       FROM processed_files f JOIN ingestions i ON i.id = f.ingestion_id WHERE i.name = $1`,
    [ingestion],
  );
  const row = rows[0]!;
  if (
    Number(row.files) !== names.length ||
    Number(row.paths) !== names.length ||
    Number(row.versions) !== 1
  ) {
    throw new Error(
      `${ingestion}: ${row.files} file rows, ${row.paths} distinct paths, max version ${row.versions}; want ${names.length}, ${names.length}, 1`,
    );
  }
}

/** The steps' share of the time inside submissions, from the `files submitted` lines of a process's log. */
async function stepShares(logFile: string): Promise<string> {
  const totals: Record<string, number> = {};
  let submissions = 0;
  for (const text of (await readFile(logFile, "utf8")).split("\n")) {
    if (!text.includes('"files submitted"')) continue;
    const { ms } = JSON.parse(text) as { ms?: Record<string, number> };
    submissions += 1;
    for (const [step, value] of Object.entries(ms ?? {})) totals[step] = (totals[step] ?? 0) + value;
  }
  const all = Object.values(totals).reduce((a, b) => a + b, 0);
  const shares = Object.entries(totals).map(
    ([step, value]) => `${step} ${Math.round((100 * value) / all)} %`,
  );
  return `${submissions} submissions, ${(all / Math.max(submissions, 1)).toFixed(0)} ms each: ${shares.join(", ")}`;
}

function line(label: string, m: Measured, baseline?: Measured): void {
  const sorted = [...m.latencies].sort((a, b) => a - b);
  const rate = Math.round(paths / m.seconds).toLocaleString("en-US");
  const ratio = baseline ? `  ${(baseline.seconds / m.seconds).toFixed(2)}× raw` : "";
  console.log(
    `${label.padEnd(28)} ${m.seconds.toFixed(2).padStart(7)} s  ${rate.padStart(7)} paths/s${ratio.padEnd(12)}` +
      `  p50 ${percentile(sorted, 50).toFixed(0)} ms  p99 ${percentile(sorted, 99).toFixed(0)} ms  (${sorted.length} ${label.startsWith("lakeferry-submit") ? "jobs" : "calls"})`,
  );
}

const logger = createLogger({ name: "bench", level: "silent" });
const dir = await mkdtemp(join(tmpdir(), "lakeferry-submit-load-"));
const db = createDatabase({ connectionString: databaseUrl, schema, maxConnections: 4 });
const children: ChildProcess[] = [];
const ingestQueue = new IngestQueue({ redisUrl, prefix });
try {
  await migrate(db);
  const apiNames = await makeSource(join(dir, "api"), paths);
  const queueNames = await makeSource(join(dir, "queue"), paths);
  const rawNames = Array.from({ length: paths }, (_, i) => `file://${dir}/raw/${relativeName(i)}`);
  for (const [name, sub] of [
    ["load-api", "api"],
    ["load-queue", "queue"],
  ] as const) {
    await applyIngestion(
      { db, queue: ingestQueue, logger },
      parseIngestionSpec({
        name,
        source: `file://${join(dir, sub)}/`,
        pattern: "**/*.json",
        format: "json",
        schema: "n BIGINT",
        table: `lake.bench_${id}.${sub}`,
      }),
    );
  }
  // Registration only: the workers take no ingest job, so nothing reaches Spark.
  const pausedConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
  const paused = new Queue(INGEST_QUEUE, { connection: pausedConnection, prefix });
  await paused.pause();

  console.log(
    `lakeferry submission load (schema ${schema}): ${paths.toLocaleString("en-US")} paths each way, ${producers} producers, ` +
      `${perRequest} paths a request or job, every ${SHARED_EVERY}th path also sent by a second producer\n`,
  );
  // The baseline is measured right before each way, as the machine's load drifts.
  const raw = await rawAddBulk(rawNames, "raw-before-api");
  line("raw BullMQ addBulk", raw);

  const port = await freePort();
  const api = await startLakeferry(
    "api",
    { LAKEFERRY_API_PORT: String(port), LAKEFERRY_API_KEYS: `producer:${token}` },
    "api listening",
    join(dir, "api.log"),
  );
  children.push(api);
  const viaApi = await throughApi(apiNames, `http://127.0.0.1:${port}`);
  line("HTTP API", viaApi, raw);
  await stop(api);
  console.log(`  inside: ${await stepShares(join(dir, "api.log"))}`);

  const rawAgain = await rawAddBulk(rawNames, "raw-before-queue");
  line("raw BullMQ addBulk", rawAgain);
  const worker = await startLakeferry(
    "worker",
    { LAKEFERRY_SUBMIT_CONCURRENCY: String(submitConcurrency) },
    "worker ready",
    join(dir, "worker.log"),
  );
  children.push(worker);
  const viaQueue = await throughSubmitQueue(queueNames);
  line(`lakeferry-submit (×${submitConcurrency})`, viaQueue, rawAgain);
  await stop(worker);
  console.log(`  inside: ${await stepShares(join(dir, "worker.log"))}`);

  if (unavailable > 0) console.log(`\n${unavailable} API answers were 503 and retried`);
  await checkRegistered(db, "load-api", apiNames);
  await checkRegistered(db, "load-queue", queueNames);
  const counts = await paused.getJobCounts(
    "waiting",
    "prioritized",
    "active",
    "delayed",
    "completed",
    "failed",
  );
  const jobs = Object.values(counts).reduce((a, b) => a + b, 0);
  if (jobs !== 2 * paths)
    throw new Error(`${jobs} ingest jobs for ${2 * paths} registered files: ${JSON.stringify(counts)}`);
  console.log(
    `\nchecked: each of the ${(2 * paths).toLocaleString("en-US")} paths registered once, with one ingest job`,
  );
  await paused.close();
  await pausedConnection.quit();
} finally {
  await Promise.all(children.map((child) => stop(child).catch(() => {})));
  await ingestQueue.close().catch(() => {});
  await db.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
  await db.close();
  const redis = new Redis(redisUrl);
  for (const pattern of [`${prefix}:*`, `${prefix}-raw:*`]) {
    const keys = await redis.keys(pattern);
    for (let start = 0; start < keys.length; start += 1_000)
      await redis.del(...keys.slice(start, start + 1_000));
  }
  await redis.quit();
  await rm(dir, { recursive: true, force: true });
}
