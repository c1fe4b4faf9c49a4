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

interface Options {
  cli: string;
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
  return {
    cli: resolve(values.cli),
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

function need(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run: eval "$(bash scripts/services.sh env)"`);
  return value;
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
  const log = createWriteStream(logFile);
  const child = spawn(process.execPath, [...cli.argv, "worker"], {
    cwd: cli.root,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  child.on("exit", (code, signal) => {
    log.end();
    if (!stopping.has(child))
      say(`the worker exited by itself (${signal ?? `code ${code}`}); see ${logFile}`);
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

async function landFiles(dir: string, files: number, rows: number): Promise<void> {
  for (let start = 0; start < files; start += 250) {
    await Promise.all(
      Array.from({ length: Math.min(250, files - start) }, async (_, k) => {
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

interface Cut {
  atMs: number;
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
  ok: boolean;
}

function formatRow(o: Options, r: Result): string[] {
  const cutConnections = r.cuts.reduce((sum, cut) => sum + cut.connections, 0);
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
    `${r.cuts.length}/${o.resets} × ${o.everyMs} ms (${cutConnections} connections cut)`,
    r.expectedRows.toLocaleString("en-US"),
    r.foundRows.toLocaleString("en-US"),
    String(r.duplicated.length),
    String(r.lost.length),
    String(r.failed.length),
    verdict,
  ];
  return [
    "| checkout | files | rows/file | resets | rows expected | rows found | duplicated files | lost files | FAILED | verdict |",
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

async function run(o: Options): Promise<Result> {
  const databaseUrl = need("DATABASE_URL");
  const redisUrl = need("REDIS_URL");
  const sparkRemote = need("SPARK_REMOTE");
  const cli = await locateCli(o.cli);
  const rng = new Rng(o.seed);

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
  let worker: ChildProcess | undefined;
  let result: Result | undefined;
  try {
    await landFiles(source, o.files, o.rows);
    say(`landed ${o.files} files of ${o.rows} rows in ${source}`);
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
    const spec = specTemplate
      .replaceAll("{name}", box.name)
      .replaceAll("{source}", JSON.stringify(`file://${source}/`))
      .replaceAll("{table}", box.table)
      .replaceAll("{schema}", JSON.stringify(SCHEMA));
    const specFile = join(dir, "ingestion.yaml");
    await writeFile(specFile, spec);
    await lakeferry(cli, ["ingestion", "apply", "-f", specFile], env);

    worker = startWorker(
      cli,
      { ...env, LAKEFERRY_LOG_LEVEL: "info", LAKEFERRY_WORKER_ID: `repro-${id}` },
      logFile,
    );
    const discovered = Date.now();
    const discoverOut = await lakeferry(cli, ["discover", box.name], env);
    say(`discover returned: ${discoverOut.trim().split("\n").slice(-1)[0] ?? ""}`);

    const deadline = discovered + o.timeoutS * 1000;
    const settled = (counts: Record<string, number>): boolean =>
      (counts.SUCCESS ?? 0) + (counts.FAILED ?? 0) + (counts.SKIPPED ?? 0) >= o.files;

    // The resets start once the worker has claimed a first file (it is about to write), after a seeded
    // offset within one interval, so that different seeds hit different moments of the writes.
    const claimed = await waitForFiles(
      db,
      (counts) => Object.entries(counts).some(([status, n]) => status !== "PENDING" && n > 0),
      deadline,
      abort.signal,
    );
    if (!claimed.reached) throw new Error(`no file was claimed before the deadline; see ${logFile}`);
    const offsetMs = Math.floor(rng.fork("offset").between(0, Math.max(1, o.everyMs)));
    say(
      `first file claimed after ${((Date.now() - discovered) / 1000).toFixed(1)} s; first reset in ${offsetMs} ms` +
        (o.onClock ? " (on the clock)" : " (each waits for a write in flight)"),
    );
    const cuts: Cut[] = [];
    const stopCuts = new AbortController();
    const cutting = (async () => {
      await sleep(offsetMs, undefined, { signal: stopCuts.signal });
      for (let k = 0; k < o.resets && !stopCuts.signal.aborted; k++) {
        if (k > 0) await sleep(o.everyMs, undefined, { signal: stopCuts.signal });
        let counts = await statusCounts(db).catch((): Record<string, number> => ({}));
        // A worker that paused claiming after a reset (its breaker) holds no connection and writes
        // nothing: a reset then would cut nothing, so it waits until files are claimed and Spark is
        // spoken to again.
        while (!o.onClock && !((counts.PROCESSING ?? 0) > 0 && proxy.stats().open > 0)) {
          await sleep(200, undefined, { signal: stopCuts.signal });
          counts = await statusCounts(db).catch((): Record<string, number> => ({}));
        }
        const connections = proxy.resetAll();
        const cut = {
          atMs: Date.now() - discovered,
          connections,
          settledSoFar: (counts.SUCCESS ?? 0) + (counts.FAILED ?? 0),
        };
        cuts.push(cut);
        say(
          `reset ${k + 1}/${o.resets}: ${connections} connection(s) cut; before it: ${describeCounts(counts)}`,
        );
      }
    })().catch(() => undefined);

    const end = await waitForFiles(db, settled, deadline, abort.signal);
    stopCuts.abort();
    await cutting;
    const took = ((Date.now() - discovered) / 1000).toFixed(1);
    say(
      end.reached
        ? `every file settled ${took} s after discover: ${describeCounts(end.counts)}`
        : `NOT settled after ${took} s: ${describeCounts(end.counts)}`,
    );
    if (cuts.length < o.resets)
      say(`only ${cuts.length} of ${o.resets} resets were made before the files settled`);
    await stopProcess(worker, 30_000);

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
        `  reset at +${(cut.atMs / 1000).toFixed(1)} s: ${cut.connections} cut, ${cut.settledSoFar} files settled before it`,
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
    if (worker) await stopProcess(worker, 10_000).catch(() => undefined);
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
