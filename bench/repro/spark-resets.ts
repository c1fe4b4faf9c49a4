/**
 * Black-box reproduction of the exactly-once issue's hole 1 ("a transient error during a write is taken as
 * never committed"), run against any checkout's CLI as a user would run it:
 *
 *   npx tsx bench/repro/spark-resets.ts --cli <checkout>/apps/cli/src/main.ts
 *       [--files 3000] [--rows 20] [--resets 6] [--every-ms 4000] [--seed S]
 *       [--on-clock] [--spec TEMPLATE.yaml] [--timeout-s 1200] [--log FILE] [--keep]
 *
 * N JSON-lines files of R rows (each row carries its file's name and its line number) land in a temp
 * folder; one `lakeferry worker` of the given checkout reaches Spark through our fault proxy, which resets
 * every open connection K times, every-ms apart, while the worker writes (new connections are still
 * accepted). The first reset comes a seeded offset after the first claim; each next one every-ms after the
 * last, once files are claimed and a connection to Spark is open (a worker whose breaker paused it after a
 * reset writes nothing, and cutting nothing proves nothing); `--on-clock` cuts on the schedule alone, as
 * the issue's run did. Once Postgres says every file settled, the Iceberg table itself is read (straight
 * from Spark, not through the proxy): rows against N × R, files whose rows are there more than once, files
 * missing rows, files FAILED. Prints one table line; exits 1 when anything is lost, duplicated or wrongly
 * failed, 2 when the run itself could not be made.
 *
 * The checkout is driven only through its CLI (`migrate`, `ingestion apply -f`, `worker`, `discover`),
 * started from the checkout's own folder so that its own node_modules resolve: a `.ts` entry point runs as
 * `node --import tsx <main.ts>`, a `.js` launcher as `node <launcher>`. Its ingestion file is written from
 * `--spec` (placeholders {name}, {source}, {table}, {schema}) or, by default, in the format that both
 * 9c10c3c and today's main read. Needs DATABASE_URL, REDIS_URL and SPARK_REMOTE
 * (`eval "$(bash scripts/services.sh env)"`); everything the run makes (Postgres schema, queue keys,
 * table, temp folder) is its own and is removed at the end, unless `--keep` is given and the verdict is not
 * exact. The worker's log is kept (`--log`, by default in the temp directory).
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs, promisify } from "node:util";
import { Redis } from "ioredis";
import { errorMessage } from "@lakeferry/core";
import { createDatabase, type Database } from "@lakeferry/db";
import { FaultProxy } from "@lakeferry/fault-proxy";
import { isTableNotFound, parseSparkRemote, SparkConnectClient } from "@lakeferry/spark-connect";
import { randomSeed, Rng } from "../chaos/rng.ts";
import { need } from "../service-env.ts";

const SCHEMA = "name STRING, line INT, amount DOUBLE";
const DEFAULT_SPEC = [
  "name: {name}",
  "source: {source}",
  "format: json",
  "schema: {schema}",
  'pattern: "*.json"',
  "table: {table}",
  "",
].join("\n");

/**
 * Which fault the run makes:
 * - `resets` (hole 1): every open Spark connection is reset K times, every-ms apart, during writes;
 * - `outage` (hole 5): Spark looks down for outage-ms once a write is in flight: open connections are reset
 *   and new ones refused (`--blackhole`: held silently instead), as in a Spark restart;
 * - `pause` (hole 2): two workers with a short lease; one is SIGSTOPped for pause-ms while a batch of its
 *   own is open (its write in flight), longer than its lease and the reconciler's interval, then SIGCONTed;
 * - `rewrite` (hole 3): the proxy changes the next `--rewrites` occurrences of `--find` in what the worker
 *   sends Spark to `--replace` (as long), so that Spark rejects that one request as bad input (a function or
 *   procedure it does not know) while everything else goes through: aimed at a call made after the write,
 *   e.g. `count` (the post-commit count read) or `cherrypick_snapshot` (the publish);
 * - `expire` (hole 4): the worker dies right after its first commit, before recording it (the checkout's own
 *   `LAKEFERRY_FAULT_INJECTION=crash-after-commit`); two more commits are made on the table and every
 *   snapshot but the current one is expired (`expire_snapshots`, as table maintenance does); then a second
 *   worker starts and must resolve the dead worker's batch from the table as it is now;
 * - `flush` (hole 9): discovery is scheduled every 5 s and runs in a `lakeferry discoverer`; once the first
 *   half of the files settled, Redis loses everything the run keeps there (every key of its queue prefix is
 *   deleted, as FLUSHALL would for this deployment), then the second half lands: it must still be found;
 * - `readonly` (hole 7): while a write is in flight, lakeferry's Postgres database turns read-only for
 *   readonly-ms, as a replica does until a failover completes (`default_transaction_read_only` on the
 *   database, its sessions cut so that they reconnect under it; then back, and cut again). Writes fail
 *   with SQLSTATE 25006 meanwhile. The Iceberg catalog's own database is untouched. `--readonly-first`
 *   starts the window before the worker (so that its first claims meet it) instead of during a write.
 */
type Fault = "resets" | "outage" | "pause" | "rewrite" | "expire" | "flush" | "readonly";
const FAULTS: readonly Fault[] = ["resets", "outage", "pause", "rewrite", "expire", "flush", "readonly"];

/** Hole 9's discovery schedule: every 5 s (six fields, seconds first; both checkouts accept it). */
const FLUSH_SCHEDULE = "*/5 * * * * *";

interface Options {
  cli: string;
  fault: Fault;
  outageMs: number;
  blackhole: boolean;
  pauseMs: number;
  pauseBatchFiles: number;
  pauseAfterMs: number;
  leaseMs: number;
  find: string;
  replace: string;
  rewrites: number;
  readonlyMs: number;
  readonlyFirst: boolean;
  files: number;
  rows: number;
  resets: number;
  everyMs: number;
  seed: number;
  spec: string | undefined;
  timeoutS: number;
  log: string | undefined;
  keep: boolean;
  onClock: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      cli: { type: "string" },
      fault: { type: "string", default: "resets" },
      "outage-ms": { type: "string", default: "60000" },
      blackhole: { type: "boolean", default: false },
      "pause-ms": { type: "string", default: "30000" },
      "pause-batch-files": { type: "string", default: "50" },
      "pause-after-ms": { type: "string", default: "500" },
      "lease-ms": { type: "string", default: "3000" },
      find: { type: "string", default: "count" },
      replace: { type: "string" },
      rewrites: { type: "string", default: "1" },
      "readonly-ms": { type: "string", default: "20000" },
      "readonly-first": { type: "boolean", default: false },
      files: { type: "string", default: "3000" },
      rows: { type: "string", default: "20" },
      resets: { type: "string", default: "6" },
      "every-ms": { type: "string", default: "4000" },
      seed: { type: "string" },
      spec: { type: "string" },
      "timeout-s": { type: "string", default: "1200" },
      log: { type: "string" },
      keep: { type: "boolean", default: false },
      "on-clock": { type: "boolean", default: false },
    },
  });
  if (!values.cli)
    throw new Error("--cli <checkout>/apps/cli/src/main.ts (or apps/cli/bin/lakeferry.js) is required");
  const whole = (flag: string, text: string, min: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min)
      throw new Error(`${flag} must be an integer ≥ ${min}, got "${text}"`);
    return n;
  };
  const fault = values.fault as Fault;
  if (!FAULTS.includes(fault)) throw new Error(`--fault must be one of ${FAULTS.join(", ")}, got "${fault}"`);
  // By default the last character is changed, which turns a name Spark knows into one it does not.
  const replace = values.replace ?? `${values.find.slice(0, -1)}${values.find.endsWith("X") ? "Y" : "X"}`;
  if (Buffer.byteLength(replace) !== Buffer.byteLength(values.find) || values.find === "")
    throw new Error(`--replace must be as long as --find ("${values.find}"), got "${replace}"`);
  return {
    cli: resolve(values.cli),
    fault,
    outageMs: whole("--outage-ms", values["outage-ms"], 0),
    blackhole: values.blackhole,
    pauseMs: whole("--pause-ms", values["pause-ms"], 0),
    pauseBatchFiles: whole("--pause-batch-files", values["pause-batch-files"], 1),
    pauseAfterMs: whole("--pause-after-ms", values["pause-after-ms"], 0),
    leaseMs: whole("--lease-ms", values["lease-ms"], 1000),
    find: values.find,
    replace,
    rewrites: whole("--rewrites", values.rewrites, 1),
    readonlyMs: whole("--readonly-ms", values["readonly-ms"], 0),
    readonlyFirst: values["readonly-first"],
    files: whole("--files", values.files, 1),
    rows: whole("--rows", values.rows, 1),
    resets: whole("--resets", values.resets, 0),
    everyMs: whole("--every-ms", values["every-ms"], 0),
    seed: values.seed === undefined ? randomSeed() : whole("--seed", values.seed, 0),
    spec: values.spec === undefined ? undefined : resolve(values.spec),
    timeoutS: whole("--timeout-s", values["timeout-s"], 1),
    log: values.log === undefined ? undefined : resolve(values.log),
    keep: values.keep,
    onClock: values["on-clock"],
  };
}

const started = Date.now();
function say(line: string): void {
  process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);
}

// ---------------------------------------------------------------- the checkout under test

/** How to run a checkout's CLI: its folder (the working directory, so its node_modules resolve) and argv. */
interface Cli {
  root: string;
  argv: string[];
  /** Short commit, `+dirty` when its work tree has changes. */
  label: string;
}

async function locateCli(entry: string): Promise<Cli> {
  if (!existsSync(entry)) throw new Error(`--cli ${entry} does not exist`);
  let root = dirname(entry);
  while (!existsSync(join(root, "apps", "cli", "package.json"))) {
    const up = dirname(root);
    if (up === root)
      throw new Error(`--cli ${entry} is not inside a lakeferry checkout (no apps/cli above it)`);
    root = up;
  }
  const argv = entry.endsWith(".ts") ? ["--import", "tsx", entry] : [entry];
  const git = promisify(execFile);
  const commit = await git("git", ["-C", root, "rev-parse", "--short", "HEAD"]).then(
    (r) => r.stdout.trim(),
    () => basename(root),
  );
  const dirty = await git("git", ["-C", root, "status", "--porcelain", "--untracked-files=no"]).then(
    (r) => r.stdout.trim() !== "",
    () => false,
  );
  return { root, argv, label: `${commit}${dirty ? "+dirty" : ""}` };
}

/** `lakeferry ARGS…` of the checkout; resolves with its stdout, throws with its output unless it exits 0. */
function lakeferry(cli: Cli, args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [...cli.argv, ...args], { cwd: cli.root, env });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolvePromise(stdout)
        : reject(
            new Error(
              `lakeferry ${args.join(" ")} exited ${code}: ${(stderr || stdout).trim().slice(-2000)}`,
            ),
          ),
    );
  });
}

function startWorker(cli: Cli, env: Record<string, string>, logFile: string): ChildProcess {
  return startProcess(cli, "worker", env, logFile);
}

/** `lakeferry worker` or `lakeferry discoverer` of the checkout, its output appended to `logFile`. */
function startProcess(
  cli: Cli,
  command: "worker" | "discoverer",
  env: Record<string, string>,
  logFile: string,
): ChildProcess {
  const log = createWriteStream(logFile);
  const child = spawn(process.execPath, [...cli.argv, command], {
    cwd: cli.root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  child.on("exit", (code, signal) => {
    log.end();
    if (!stopping.has(child))
      say(`the ${command} exited by itself (${signal ?? `code ${code}`}); see ${logFile}`);
  });
  return child;
}

const stopping = new Set<ChildProcess>();

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
async function stopProcess(child: ChildProcess, graceMs: number): Promise<void> {
  stopping.add(child);
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------- data

function fileName(i: number): string {
  return `f-${String(i).padStart(6, "0")}.json`;
}

/** Writes files number `from` to `to` (exclusive). */
async function landFiles(dir: string, from: number, to: number, rows: number): Promise<void> {
  for (let start = from; start < to; start += 250) {
    await Promise.all(
      Array.from({ length: Math.min(250, to - start) }, async (_, k) => {
        const name = fileName(start + k);
        const lines = Array.from({ length: rows }, (_, line) =>
          JSON.stringify({ name, line, amount: start + k + line / 100 }),
        );
        await writeFile(join(dir, name), `${lines.join("\n")}\n`);
      }),
    );
  }
}

// ---------------------------------------------------------------- Postgres (what the checkout recorded)

async function statusCounts(db: Database): Promise<Record<string, number>> {
  const { rows } = await db.pool.query<{ status: string; n: number }>(
    "SELECT status::text AS status, count(*)::int AS n FROM processed_files GROUP BY status",
  );
  return Object.fromEntries(rows.map((row) => [row.status, row.n]));
}

function describeCounts(counts: Record<string, number>): string {
  return ["PENDING", "PROCESSING", "SUCCESS", "FAILED"].map((s) => `${s} ${counts[s] ?? 0}`).join(", ");
}

/** Polls until `ready(counts)` or the deadline; returns the last counts read. */
async function waitForFiles(
  db: Database,
  ready: (counts: Record<string, number>) => boolean,
  deadline: number,
  signal: AbortSignal,
): Promise<{ counts: Record<string, number>; reached: boolean }> {
  let counts: Record<string, number> = {};
  let lastSaid = Date.now();
  while (Date.now() < deadline && !signal.aborted) {
    counts = await statusCounts(db).catch(() => counts);
    if (ready(counts)) return { counts, reached: true };
    if (Date.now() - lastSaid > 15_000) {
      lastSaid = Date.now();
      say(`files: ${describeCounts(counts)}`);
    }
    await sleep(500);
  }
  return { counts, reached: false };
}

// ---------------------------------------------------------------- the table (what actually landed)

interface TableCount {
  rows: number;
  /** Rows and distinct line numbers per file name. */
  perFile: Map<string, { rows: number; lines: number }>;
}

async function readTable(spark: SparkConnectClient, table: string): Promise<TableCount> {
  try {
    // Each read sees the table's current snapshot, not the one this session's catalog cached.
    await spark.sqlCommand(`REFRESH TABLE ${table}`);
    const result = await spark.sql(
      `SELECT name, count(*) AS n, count(DISTINCT line) AS d FROM ${table} GROUP BY name`,
      undefined,
      { deadlineMs: 300_000 },
    );
    const perFile = new Map(
      result.map((row) => [String(row.name), { rows: Number(row.n), lines: Number(row.d) }]),
    );
    let rows = 0;
    for (const file of perFile.values()) rows += file.rows;
    return { rows, perFile };
  } catch (error) {
    if (isTableNotFound(error)) return { rows: 0, perFile: new Map() };
    throw error;
  }
}

/**
 * The table once it stopped changing: a write the worker gave up on may still be running in Spark after
 * Postgres settled (that is the hole), so reads are repeated until two, 10 s apart, agree.
 */
async function readSettledTable(spark: SparkConnectClient, table: string): Promise<TableCount> {
  let last = await readTable(spark, table);
  for (let read = 0; read < 12; read++) {
    await sleep(10_000);
    const next = await readTable(spark, table);
    if (next.rows === last.rows) return next;
    say(`the table changed after Postgres settled: ${last.rows} → ${next.rows} rows; reading again`);
    last = next;
  }
  say("the table was still changing after 2 minutes; judging its last read");
  return last;
}

// ---------------------------------------------------------------- the run

/** One fault made: a reset, an outage or a worker's pause. */
interface Cut {
  atMs: number;
  /** Connections cut (resets, outage) or files of the paused worker's open batch (pause). */
  connections: number;
  settledSoFar: number;
}

interface Result {
  label: string;
  expectedRows: number;
  foundRows: number;
  duplicated: string[];
  lost: string[];
  failed: string[];
  strangers: string[];
  unsettled: number;
  cuts: Cut[];
  /** Connections the proxy refused (outage). */
  refused: number;
  /** Requests the proxy rewrote (rewrite). */
  rewritten: number;
  ok: boolean;
}

function formatRow(o: Options, r: Result): string[] {
  const cutConnections = r.cuts.reduce((sum, cut) => sum + cut.connections, 0);
  const fault = {
    resets: `${r.cuts.length}/${o.resets} resets × ${o.everyMs} ms (${cutConnections} connections cut)`,
    outage: `${r.cuts.length}/1 outage of ${o.outageMs / 1000} s, ${o.blackhole ? "blackholed" : "refused"} (${cutConnections} connections cut, ${r.refused} refused)`,
    pause: `${r.cuts.length}/1 pause of 1 of 2 workers for ${o.pauseMs / 1000} s, lease ${o.leaseMs} ms (${cutConnections} files in its open batch)`,
    rewrite: `${r.rewritten}/${o.rewrites} request(s) to Spark with "${o.find}" → "${o.replace}"`,
    readonly: `${r.cuts.length}/1 read-only Postgres for ${o.readonlyMs / 1000} s (${cutConnections} sessions cut)`,
    flush: `${r.cuts.length}/1 loss of Redis's data (${cutConnections} keys), then ${o.files - Math.ceil(o.files / 2)} files landed`,
    expire: `${r.cuts.length}/1 crash after commit, then 2 commits and expire_snapshots (${cutConnections} files in the dead worker's batch)`,
  }[o.fault];
  const verdict = r.ok
    ? "exact"
    : [
        r.duplicated.length > 0 ? "DUPLICATED" : "",
        r.lost.length > 0 ? "LOST" : "",
        r.failed.length > 0 ? "WRONGLY FAILED" : "",
        r.unsettled > 0 ? `UNSETTLED (${r.unsettled})` : "",
        r.strangers.length > 0 ? "STRANGER ROWS" : "",
      ]
        .filter(Boolean)
        .join(", ");
  const cells = [
    r.label,
    o.files.toLocaleString("en-US"),
    String(o.rows),
    fault,
    r.expectedRows.toLocaleString("en-US"),
    r.foundRows.toLocaleString("en-US"),
    String(r.duplicated.length),
    String(r.lost.length),
    String(r.failed.length),
    verdict,
  ];
  return [
    "| checkout | files | rows/file | fault | rows expected | rows found | duplicated files | lost files | FAILED | verdict |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    `| ${cells.join(" | ")} |`,
  ];
}

async function deleteQueueKeys(redisUrl: string, prefix: string): Promise<number> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3 });
  let deleted = 0;
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
      cursor = next;
      if (keys.length > 0) deleted += await redis.del(...keys);
    } while (cursor !== "0");
  } finally {
    redis.disconnect();
  }
  return deleted;
}

// ---------------------------------------------------------------- the faults

/** What a fault acts on; `stop` is aborted once every file settled. */
interface Scene {
  o: Options;
  db: Database;
  proxy: FaultProxy;
  workers: ChildProcess[];
  workerIds: string[];
  discovered: number;
  cuts: Cut[];
  stop: AbortSignal;
  /** Reads the table straight from Spark (not through the proxy). */
  spark: SparkConnectClient;
  table: string;
  /** Starts one more worker of the checkout (numbered after those running). */
  launchWorker: () => void;
  /** Lands files number `from` to `to` (exclusive) in the watched folder. */
  land: (from: number, to: number) => Promise<void>;
  /** Deletes every key of the run's queue prefix; resolves with how many. */
  loseRedis: () => Promise<number>;
}

function makeFaults(scene: Scene): Promise<void> {
  if (scene.o.fault === "outage") return makeOutage(scene);
  if (scene.o.fault === "pause") return pauseWriter(scene);
  if (scene.o.fault === "rewrite") return rewriteRequests(scene);
  if (scene.o.fault === "expire") return expireAfterCrash(scene);
  if (scene.o.fault === "flush") return loseRedisThenLand(scene);
  if (scene.o.fault === "readonly") return readOnlyWindow(scene);
  return makeResets(scene);
}

/** Polls until files are claimed and a connection to Spark is open (a write can be in flight). */
async function waitForWrite(scene: Scene): Promise<Record<string, number>> {
  let counts = await statusCounts(scene.db).catch((): Record<string, number> => ({}));
  while (!((counts.PROCESSING ?? 0) > 0 && scene.proxy.stats().open > 0)) {
    await sleep(200, undefined, { signal: scene.stop });
    counts = await statusCounts(scene.db).catch((): Record<string, number> => ({}));
  }
  return counts;
}

function recordCut(scene: Scene, connections: number, counts: Record<string, number>): void {
  scene.cuts.push({
    atMs: Date.now() - scene.discovered,
    connections,
    settledSoFar: (counts.SUCCESS ?? 0) + (counts.FAILED ?? 0),
  });
}

/** Hole 1: resets every open connection K times, every-ms apart. */
async function makeResets(scene: Scene): Promise<void> {
  const { o, proxy } = scene;
  const offsetMs = Math.floor(new Rng(o.seed).fork("offset").between(0, Math.max(1, o.everyMs)));
  say(
    `first reset in ${offsetMs} ms` + (o.onClock ? " (on the clock)" : " (each waits for a write in flight)"),
  );
  await sleep(offsetMs, undefined, { signal: scene.stop });
  for (let k = 0; k < o.resets && !scene.stop.aborted; k++) {
    if (k > 0) await sleep(o.everyMs, undefined, { signal: scene.stop });
    // A worker that paused claiming after a reset (its breaker) holds no connection and writes nothing:
    // a reset then would cut nothing, so it waits until files are claimed and Spark is spoken to again.
    const counts = o.onClock
      ? await statusCounts(scene.db).catch((): Record<string, number> => ({}))
      : await waitForWrite(scene);
    const connections = proxy.resetAll();
    recordCut(scene, connections, counts);
    say(`reset ${k + 1}/${o.resets}: ${connections} connection(s) cut; before it: ${describeCounts(counts)}`);
  }
}

/**
 * Hole 5: Spark goes away for outage-ms while a write is in flight, as in a restart: open connections are
 * reset and new ones refused (or, with `--blackhole`, every connection is held silently), then it comes back.
 */
async function makeOutage(scene: Scene): Promise<void> {
  const { o, proxy } = scene;
  const counts = await waitForWrite(scene);
  let connections = 0;
  if (o.blackhole) proxy.blackhole(true);
  else {
    proxy.refuse(true);
    connections = proxy.resetAll();
  }
  recordCut(scene, connections, counts);
  say(
    `Spark ${o.blackhole ? "blackholed" : "refused"} for ${o.outageMs} ms; ${connections} connection(s) cut; ` +
      `before it: ${describeCounts(counts)}`,
  );
  try {
    await sleep(o.outageMs, undefined, { signal: scene.stop });
  } finally {
    proxy.refuse(false);
    proxy.blackhole(false);
    say(`Spark reachable again; ${proxy.stats().refused} connection(s) were refused`);
  }
}

/**
 * Hole 2: SIGSTOPs a worker once a batch of its own is open (its files carry the batch id, so its
 * write is in flight), for pause-ms, longer than its lease and the reconciler's interval; the other worker
 * is free to claim the files the reconciler hands back. Then SIGCONT. The pause runs its whole length even if
 * every file settles meanwhile, so that the paused writer wakes before the workers are stopped.
 */
async function pauseWriter(scene: Scene): Promise<void> {
  const { o, db } = scene;
  let open = 0;
  let victimId = "";
  // A batch of at least pause-batch-files files (the first batches hold the first few claims only), and
  // pause-after-ms after it opened, so that its write has reached Spark: a worker stopped between opening
  // its batch and sending the write notices its lost lease on waking and writes nothing.
  while (open < Math.min(o.pauseBatchFiles, o.files)) {
    await sleep(100, undefined, { signal: scene.stop });
    const { rows } = await db.pool
      .query<{ owner: string; n: number }>(
        "SELECT lease_owner AS owner, count(*)::int AS n FROM processed_files " +
          "WHERE status = 'PROCESSING' AND batch_id IS NOT NULL AND lease_owner = ANY($1::text[]) " +
          "GROUP BY lease_owner ORDER BY n DESC LIMIT 1",
        [scene.workerIds],
      )
      .catch(() => ({ rows: [] }));
    open = rows[0]?.n ?? 0;
    victimId = rows[0]?.owner ?? "";
  }
  const victim = scene.workers[scene.workerIds.indexOf(victimId)];
  if (!victim) throw new Error(`no worker named ${victimId}`);
  await sleep(o.pauseAfterMs, undefined, { signal: scene.stop });
  victim.kill("SIGSTOP");
  const counts = await statusCounts(db).catch((): Record<string, number> => ({}));
  recordCut(scene, open, counts);
  say(
    `${victimId} stopped (SIGSTOP) with ${open} file(s) in its open batch; before it: ${describeCounts(counts)}`,
  );
  try {
    await sleep(o.pauseMs);
  } finally {
    victim.kill("SIGCONT");
    const after = await statusCounts(db).catch((): Record<string, number> => ({}));
    say(`${victimId} continued (SIGCONT) after ${o.pauseMs} ms; now: ${describeCounts(after)}`);
  }
}

/**
 * Hole 3: the next `--rewrites` requests to Spark that contain `--find` reach it with `--replace` instead,
 * which Spark rejects as bad input (not retryable); everything else goes through unchanged.
 */
async function rewriteRequests(scene: Scene): Promise<void> {
  const { o, proxy } = scene;
  proxy.rewriteToTarget(o.find, o.replace, o.rewrites);
  say(`the next ${o.rewrites} request(s) to Spark with "${o.find}" will carry "${o.replace}"`);
  let made = 0;
  while (made < o.rewrites) {
    await sleep(100, undefined, { signal: scene.stop });
    const now = proxy.stats().rewritten;
    for (; made < now; made++) {
      const counts = await statusCounts(scene.db).catch((): Record<string, number> => ({}));
      recordCut(scene, 1, counts);
      say(`request ${made + 1}/${o.rewrites} rewritten; now: ${describeCounts(counts)}`);
    }
  }
}

/**
 * Hole 4: the first worker kills itself right after its first commit (before recording it). Then two commits
 * (a row of no landed file, and its delete) move the table on, and `expire_snapshots` keeps only the current
 * snapshot, as table maintenance would; only then does a second worker start, which must resolve the dead
 * worker's batch from the table as it is now.
 */
async function expireAfterCrash(scene: Scene): Promise<void> {
  const { db, spark, table } = scene;
  const victim = scene.workers[0];
  if (!victim) throw new Error("no worker to crash");
  if (victim.exitCode === null && victim.signalCode === null) {
    await new Promise((resolveExit, reject) => {
      victim.once("exit", resolveExit);
      scene.stop.addEventListener("abort", () => reject(new Error("stopped")), { once: true });
    });
  }
  const { rows } = await db.pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM processed_files WHERE status = 'PROCESSING' AND batch_id IS NOT NULL",
  );
  const inBatch = rows[0]?.n ?? 0;
  const counts = await statusCounts(db);
  recordCut(scene, inBatch, counts);
  say(
    `the first worker died after its commit, ${inBatch} file(s) in its batch; now: ${describeCounts(counts)}`,
  );

  await spark.sqlCommand(`REFRESH TABLE ${table}`);
  await spark.sqlCommand(
    `INSERT INTO ${table} (name, line, amount, _source_file, _ingested_at) ` +
      "VALUES ('maintenance', 0, 0, 'maintenance', current_timestamp())",
  );
  await spark.sqlCommand(`DELETE FROM ${table} WHERE name = 'maintenance'`);
  const [catalog, ...identifier] = table.split(".");
  const expired = await spark.sql(
    `CALL ${catalog}.system.expire_snapshots(table => '${identifier.join(".")}', ` +
      "older_than => TIMESTAMP '2999-01-01 00:00:00', retain_last => 1)",
  );
  const snapshots = await spark.sql(`SELECT count(*) AS n FROM ${table}.snapshots`);
  say(
    `2 commits made and snapshots expired (${JSON.stringify(expired[0] ?? {}, (_, v: unknown) => (typeof v === "bigint" ? Number(v) : v))}); ` +
      `${String(snapshots[0]?.n)} snapshot(s) left; starting the second worker`,
  );
  scene.launchWorker();
}

/**
 * Hole 9: once the first half of the files settled, everything the run keeps in Redis is lost (its schedule,
 * its jobs, its markers); then the second half lands. Scheduled discovery must still find it.
 */
async function loseRedisThenLand(scene: Scene): Promise<void> {
  const { o, db } = scene;
  const firstHalf = Math.ceil(o.files / 2);
  const settledNow = (counts: Record<string, number>): number => (counts.SUCCESS ?? 0) + (counts.FAILED ?? 0);
  let counts = await statusCounts(db);
  while (settledNow(counts) < firstHalf) {
    await sleep(500, undefined, { signal: scene.stop });
    counts = await statusCounts(db).catch(() => counts);
  }
  const keys = await scene.loseRedis();
  recordCut(scene, keys, counts);
  say(`Redis lost the run's ${keys} key(s) (schedule, jobs, markers); now: ${describeCounts(counts)}`);
  await scene.land(firstHalf, o.files);
  say(`landed the second half (${o.files - firstHalf} files); scheduled discovery must find them`);
}

/**
 * Hole 7: lakeferry's database refuses writes (SQLSTATE 25006) for readonly-ms while a write is in flight,
 * as a replica does until a failover completes. Its sessions are cut so that they reconnect read-only, and
 * cut again once it is writable, so that they reconnect writable.
 */
async function readOnlyWindow(scene: Scene): Promise<void> {
  const { o, db } = scene;
  const counts = scene.workers.length === 0 ? await statusCounts(db) : await waitForWrite(scene);
  const admin = await db.pool.connect();
  const setReadOnly = async (on: boolean): Promise<number> => {
    await admin.query(
      `DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET default_transaction_read_only = ${on ? "on" : "off"}', current_database()); END $$`,
    );
    const { rows } = await admin.query<{ n: number }>(
      "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity " +
        "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
    );
    return rows[0]?.n ?? 0;
  };
  try {
    // This session writes whatever the database's default becomes.
    await admin.query("SET default_transaction_read_only = off");
    const cut = await setReadOnly(true);
    recordCut(scene, cut, counts);
    say(
      `Postgres read-only for ${o.readonlyMs} ms; ${cut} session(s) cut; before it: ${describeCounts(counts)}`,
    );
    if (scene.workers.length === 0) {
      scene.launchWorker();
      say("the worker started: its first claims meet the read-only database");
    }
    await sleep(o.readonlyMs).catch(() => undefined);
    const again = await setReadOnly(false);
    say(`Postgres writable again; ${again} session(s) cut so that they reconnect writable`);
  } finally {
    await admin
      .query(
        "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET default_transaction_read_only', current_database()); END $$",
      )
      .catch((error: unknown) =>
        say(`could not reset default_transaction_read_only: ${errorMessage(error)}`),
      );
    admin.release();
  }
}

async function run(o: Options): Promise<Result> {
  const databaseUrl = need("DATABASE_URL");
  const redisUrl = need("REDIS_URL");
  const sparkRemote = need("SPARK_REMOTE");
  const cli = await locateCli(o.cli);

  const id = randomBytes(3).toString("hex");
  const box = {
    name: `repro-${id}`,
    schema: `repro_${id}`,
    prefix: `repro-${id}`,
    table: `lake.repro_${id}.t`,
  };
  const dir = await mkdtemp(join(tmpdir(), "lakeferry-repro-"));
  const source = join(dir, "landing");
  const logFile = o.log ?? join(tmpdir(), `lakeferry-repro-${id}-worker.log`);
  await mkdir(source);
  await mkdir(dirname(logFile), { recursive: true });
  say(
    `checkout ${cli.label} (${cli.root}); seed ${o.seed}; schema ${box.schema}, prefix ${box.prefix}, ` +
      `table ${box.table}; worker log ${logFile}`,
  );

  const target = parseSparkRemote(sparkRemote);
  const proxy = new FaultProxy({ target: { host: target.host, port: target.port } });
  const db = createDatabase({ connectionString: databaseUrl, schema: box.schema, maxConnections: 2 });
  const spark = new SparkConnectClient({ remote: sparkRemote, clientType: "lakeferry-repro" });
  const abort = new AbortController();
  const onSignal = (): void => abort.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const workers: ChildProcess[] = [];
  const workerIds: string[] = [];
  let discoverer: ChildProcess | undefined;
  let result: Result | undefined;
  try {
    // Hole 9 lands the second half only after Redis lost its data.
    const firstLanding = o.fault === "flush" ? Math.ceil(o.files / 2) : o.files;
    await landFiles(source, 0, firstLanding, o.rows);
    say(`landed ${firstLanding} files of ${o.rows} rows in ${source}`);
    await proxy.start();
    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      SPARK_REMOTE: sparkRemote.replace(/^sc:\/\/[^/]+/, `sc://${proxy.address}`),
      LAKEFERRY_DB_SCHEMA: box.schema,
      LAKEFERRY_QUEUE_PREFIX: box.prefix,
      LAKEFERRY_LOG_LEVEL: "warn",
    };
    delete env.LAKEFERRY_FAULT_INJECTION;
    say(`fault proxy on ${proxy.address} → ${target.address}; the checkout reaches Spark through it`);

    await lakeferry(cli, ["migrate"], env);
    const specTemplate = o.spec === undefined ? DEFAULT_SPEC : await readFile(o.spec, "utf8");
    const spec = (o.fault === "flush" ? `${specTemplate}schedule: "${FLUSH_SCHEDULE}"\n` : specTemplate)
      .replaceAll("{name}", box.name)
      .replaceAll("{source}", JSON.stringify(`file://${source}/`))
      .replaceAll("{table}", box.table)
      .replaceAll("{schema}", JSON.stringify(SCHEMA));
    const specFile = join(dir, "ingestion.yaml");
    await writeFile(specFile, spec);
    await lakeferry(cli, ["ingestion", "apply", "-f", specFile], env);

    // Holes 2 and 4 need a lease that a paused or dead writer outlives and a reconciler that notices soon;
    // the other modes run the checkout's defaults.
    const recovery: Record<string, string> =
      o.fault === "pause" || o.fault === "expire"
        ? {
            LAKEFERRY_LEASE_MS: String(o.leaseMs),
            LAKEFERRY_RECONCILE_INTERVAL_MS: "1000",
            LAKEFERRY_BATCH_GRACE_MS: String(o.leaseMs),
          }
        : {};
    const launchWorker = (): void => {
      const w = workers.length + 1;
      const workerId = `repro-${id}-${w}`;
      // Hole 4: the first worker dies right after its first commit, before recording it.
      const crash: Record<string, string> =
        o.fault === "expire" && w === 1 ? { LAKEFERRY_FAULT_INJECTION: "crash-after-commit" } : {};
      workerIds.push(workerId);
      workers.push(
        startWorker(
          cli,
          { ...env, ...recovery, ...crash, LAKEFERRY_LOG_LEVEL: "info", LAKEFERRY_WORKER_ID: workerId },
          w === 1 ? logFile : logFile.replace(/(\.log)?$/, `-${w}$1`),
        ),
      );
    };
    // Hole 7 with --readonly-first starts its worker only once the database is read-only.
    const startWith = o.fault === "pause" ? 2 : o.fault === "readonly" && o.readonlyFirst ? 0 : 1;
    for (let w = 1; w <= startWith; w++) launchWorker();
    const discovered = Date.now();
    if (o.fault === "flush") {
      // Scheduled discovery: a discoverer process runs the schedule.
      const discovererLog = logFile.replace(/(\.log)?$/, `-discoverer$1`);
      discoverer = startProcess(cli, "discoverer", { ...env, LAKEFERRY_LOG_LEVEL: "info" }, discovererLog);
      say(`discoverer started (schedule "${FLUSH_SCHEDULE}"); its log ${discovererLog}`);
    } else {
      const discoverOut = await lakeferry(cli, ["discover", box.name], env);
      say(`discover returned: ${discoverOut.trim().split("\n").slice(-1)[0] ?? ""}`);
    }

    const deadline = discovered + o.timeoutS * 1000;
    const settled = (counts: Record<string, number>): boolean =>
      (counts.SUCCESS ?? 0) + (counts.FAILED ?? 0) + (counts.SKIPPED ?? 0) >= o.files;

    // The faults start once a worker has claimed a first file (it is about to write).
    if (startWith > 0) {
      const claimed = await waitForFiles(
        db,
        (counts) => Object.entries(counts).some(([status, n]) => status !== "PENDING" && n > 0),
        deadline,
        abort.signal,
      );
      if (!claimed.reached) throw new Error(`no file was claimed before the deadline; see ${logFile}`);
      say(`first file claimed after ${((Date.now() - discovered) / 1000).toFixed(1)} s`);
    }
    const cuts: Cut[] = [];
    const stopCuts = new AbortController();
    const scene: Scene = {
      o,
      db,
      proxy,
      workers,
      workerIds,
      discovered,
      cuts,
      stop: stopCuts.signal,
      spark,
      table: box.table,
      launchWorker,
      land: (from, to) => landFiles(source, from, to, o.rows),
      loseRedis: () => deleteQueueKeys(redisUrl, box.prefix),
    };
    const cutting = makeFaults(scene).catch((error: unknown) => {
      if (!stopCuts.signal.aborted) say(`the fault could not be made: ${errorMessage(error)}`);
    });

    const end = await waitForFiles(db, settled, deadline, abort.signal);
    stopCuts.abort();
    await cutting;
    const took = ((Date.now() - discovered) / 1000).toFixed(1);
    say(
      end.reached
        ? `every file settled ${took} s after discover: ${describeCounts(end.counts)}`
        : `NOT settled after ${took} s: ${describeCounts(end.counts)}`,
    );
    const planned = o.fault === "resets" ? o.resets : o.fault === "rewrite" ? o.rewrites : 1;
    if (cuts.length < planned) say(`only ${cuts.length} fault(s) were made before the files settled`);
    await Promise.all(
      [...workers, ...(discoverer ? [discoverer] : [])].map((child) => stopProcess(child, 30_000)),
    );

    const table = await readSettledTable(spark, box.table);
    const { rows: failedRows } = await db.pool.query<{ file_path: string; error: string | null }>(
      "SELECT file_path, coalesce(error_type, '') || ': ' || coalesce(error_message, '') AS error " +
        "FROM processed_files WHERE status = 'FAILED' ORDER BY file_path",
    );
    const expected = new Set(Array.from({ length: o.files }, (_, i) => fileName(i)));
    const duplicated: string[] = [];
    const lost: string[] = [];
    for (const name of expected) {
      const seen = table.perFile.get(name);
      if (!seen || seen.lines < o.rows) lost.push(name);
      if (seen && seen.rows > seen.lines) duplicated.push(`${name} (${seen.rows} rows)`);
    }
    const strangers = [...table.perFile.keys()].filter((name) => !expected.has(name));
    const unsettled = end.reached ? 0 : o.files - ((end.counts.SUCCESS ?? 0) + (end.counts.FAILED ?? 0));
    result = {
      label: cli.label,
      expectedRows: o.files * o.rows,
      foundRows: table.rows,
      duplicated,
      lost,
      failed: failedRows.map((row) => `${basename(row.file_path)} ${(row.error ?? "").slice(0, 200)}`),
      strangers,
      unsettled,
      cuts,
      refused: proxy.stats().refused,
      rewritten: proxy.stats().rewritten,
      ok: false,
    };
    result.ok =
      table.rows === result.expectedRows &&
      duplicated.length + lost.length + result.failed.length + strangers.length + unsettled === 0;

    const logLines = (await readFile(logFile, "utf8")).split("\n");
    const warnings = logLines.filter((line) => /"level":[4-6]\d/.test(line)).length;
    const resetErrors = logLines.filter((line) => /ECONNRESET|UNAVAILABLE/.test(line)).length;
    say(
      `worker log: ${warnings} line(s) at warn or above, ${resetErrors} naming ECONNRESET/UNAVAILABLE (${logFile})`,
    );
    for (const cut of cuts) {
      say(
        `  ${o.fault} at +${(cut.atMs / 1000).toFixed(1)} s: ${cut.connections} cut, ${cut.settledSoFar} files settled before it`,
      );
    }
    for (const [label, list] of [
      ["duplicated", duplicated],
      ["lost", lost],
      ["FAILED", result.failed],
      ["rows of no landed file", strangers],
    ] as const) {
      if (list.length > 0) say(`${label}: ${list.length}, e.g. ${list.slice(0, 5).join("; ")}`);
    }
    return result;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    for (const worker of workers) worker.kill("SIGCONT");
    await Promise.all(
      [...workers, ...(discoverer ? [discoverer] : [])].map((child) =>
        stopProcess(child, 10_000).catch(() => undefined),
      ),
    );
    await proxy.close().catch(() => undefined);
    if (o.keep && !result?.ok) {
      say(
        `kept for inspection: schema ${box.schema}, queue prefix ${box.prefix}, table ${box.table}, folder ${dir}`,
      );
    } else {
      await spark
        .sqlCommand(`DROP TABLE IF EXISTS ${box.table} PURGE`)
        .catch((error: unknown) => say(`drop table: ${errorMessage(error)}`));
      await spark.sqlCommand(`DROP NAMESPACE IF EXISTS lake.repro_${id}`).catch(() => undefined);
      await db.pool
        .query(`DROP SCHEMA IF EXISTS "${box.schema}" CASCADE`)
        .catch((error: unknown) => say(`drop schema: ${errorMessage(error)}`));
      await deleteQueueKeys(redisUrl, box.prefix).catch((error: unknown) =>
        say(`queue keys: ${errorMessage(error)}`),
      );
      await rm(dir, { recursive: true, force: true });
    }
    await spark.close().catch(() => undefined);
    await db.close().catch(() => undefined);
  }
}

const options = parseOptions(process.argv.slice(2));
try {
  const result = await run(options);
  console.log(formatRow(options, result).join("\n"));
  process.exit(result.ok ? 0 : 1);
} catch (error) {
  process.stderr.write(`spark-resets: ${errorMessage(error)}\n`);
  process.exit(2);
}
