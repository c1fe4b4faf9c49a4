/**
 * lakeferry side by side with the seed's Option 3 (Spark Structured Streaming, trigger(availableNow),
 * checkpointed) and with one plain batch job (the limit), on the same Spark Connect server, in one run:
 *   (a) small JSON files (10 rows each), (b) a few large files, (c) small files of which some are corrupt;
 * lakeferry with 1 and with 3 worker processes, started as a user would (`lakeferry worker`), timed from
 * `lakeferry discover` to every file settled. Option 3 and the plain job run in pyspark's Connect client
 * (installed in a venv under .cache/ on first use). Prints each time, the ratios lakeferry / Option 3 and
 * lakeferry / plain job, snapshots, and checks rows per `_source_file` for every contender.
 *
 *   npm run bench:vs-streaming -- [--small 1000,5000] [--workers 1,3] [--large 20] [--large-mb 50]
 *                                 [--corrupt 5] [--corrupt-of 5000] [--only a,b,c] [--logs DIR]
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, existsSync, mkdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createDatabase, type Database } from "@lakeferry/db";
import { SparkConnectClient } from "@lakeferry/spark-connect";
import { need } from "./service-env.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The `lakeferry` command as installed: the launcher runs the built CLI (scripts/bench.sh builds it first). */
const BIN = join(ROOT, "apps/cli/bin/lakeferry.js");
const SCHEMA = "id BIGINT, file INT, amount DOUBLE, note STRING";

interface Options {
  small: number[];
  workers: number[];
  large: number;
  largeMb: number;
  corrupt: number;
  corruptOf: number;
  only: Set<string>;
  /** Folder for the workers' logs (one file each); by default they are dropped. */
  logs?: string;
}

function parseOptions(argv: string[]): Options {
  const options: Options = {
    small: [1000, 5000],
    workers: [1, 3],
    large: 20,
    largeMb: 50,
    corrupt: 5,
    corruptOf: 5000,
    only: new Set(["a", "b", "c"]),
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    const numbers = (): number[] => value.split(",").map(Number);
    if (flag === "--small") options.small = numbers();
    else if (flag === "--workers") options.workers = numbers();
    else if (flag === "--large") options.large = Number(value);
    else if (flag === "--large-mb") options.largeMb = Number(value);
    else if (flag === "--corrupt") options.corrupt = Number(value);
    else if (flag === "--corrupt-of") options.corruptOf = Number(value);
    else if (flag === "--only") options.only = new Set(value.split(","));
    else if (flag === "--logs") {
      options.logs = resolve(value);
      mkdirSync(options.logs, { recursive: true });
    } else throw new Error(`unknown option ${flag}`);
  }
  return options;
}

const options = parseOptions(process.argv.slice(2));
const databaseUrl = need("DATABASE_URL");
const sparkRemote = need("SPARK_REMOTE");
const runId = randomBytes(3).toString("hex");
const spark = new SparkConnectClient({ remote: sparkRemote });

// ---------------------------------------------------------------- processes

function run(
  command: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { cwd: ROOT, env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ code: code ?? 1, stdout, stderr }));
  });
}

async function lakeferry(args: string[], env: Record<string, string>): Promise<string> {
  const result = await run(process.execPath, [BIN, ...args], env);
  if (result.code !== 0)
    throw new Error(`lakeferry ${args.join(" ")} exited ${result.code}: ${result.stderr}`);
  return result.stdout;
}

/** A `lakeferry worker`, resolved once it logged that it is ready. */
async function startWorker(env: Record<string, string>, id: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [BIN, "worker"], {
    cwd: ROOT,
    env: {
      ...process.env,
      ...env,
      LAKEFERRY_WORKER_ID: id,
      // Logs kept (--logs): everything, for a timeline of the run.
      LAKEFERRY_LOG_LEVEL: options.logs === undefined ? "info" : "debug",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  await new Promise<void>((resolvePromise, reject) => {
    let seen = "";
    const onData = (chunk: Buffer): void => {
      seen += chunk.toString("utf8");
      if (seen.includes('"worker ready"')) resolvePromise();
      if (seen.length > 1_000_000) seen = seen.slice(-10_000);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.on("exit", (code) => reject(new Error(`worker ${id} exited ${code} before it was ready: ${seen}`)));
  });
  if (options.logs !== undefined) {
    const log = createWriteStream(join(options.logs, `${id}.log`));
    child.stdout?.pipe(log);
    child.stderr?.pipe(log);
  }
  return child;
}

async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.on("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------- peer (pyspark Connect client)

async function peerPython(): Promise<string> {
  const version = await spark.version();
  const venv = join(ROOT, ".cache", `pyspark-client-${version}`);
  const python = join(venv, "bin", "python");
  if (!existsSync(python)) {
    const pkg = version.startsWith("3.") ? `pyspark[connect]==${version}` : `pyspark-client==${version}`;
    console.error(`installing ${pkg} into ${venv} (once)`);
    const made = await run("python3", ["-m", "venv", venv]);
    if (made.code !== 0) throw new Error(`python3 -m venv failed: ${made.stderr}`);
    const pip = await run(python, ["-m", "pip", "install", "--quiet", pkg]);
    if (pip.code !== 0) throw new Error(`pip install ${pkg} failed: ${pip.stderr}`);
  }
  return python;
}

async function peer(
  python: string,
  mode: "stream" | "batch",
  source: string,
  table: string,
  checkpoint?: string,
): Promise<{ seconds: number; error: string | null }> {
  const args = [join(ROOT, "bench/vs-streaming/peer.py"), mode, sparkRemote, source, table, SCHEMA];
  if (checkpoint) args.push(checkpoint);
  const result = await run(python, args);
  const line = result.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as { seconds: number; error: string | null };
  } catch {
    throw new Error(`peer ${mode} printed no result (exit ${result.code}): ${result.stderr.slice(-2000)}`);
  }
}

// ---------------------------------------------------------------- data

interface Landing {
  dir: string;
  /** Rows per file name (base name), corrupt files excluded. */
  rows: Map<string, number>;
  corrupt: Set<string>;
}

async function land(
  label: string,
  files: number,
  rowsPerFile: number,
  corrupt = 0,
  noteBytes = 0,
): Promise<Landing> {
  const dir = await mkdtemp(join(tmpdir(), `lakeferry-vs-${label}-`));
  const rows = new Map<string, number>();
  const corruptNames = new Set<string>();
  const note = "x".repeat(noteBytes);
  // Corrupt files spread evenly through the listing.
  const corruptAt = new Set(
    Array.from({ length: corrupt }, (_, k) => Math.floor(((k + 0.5) * files) / corrupt)),
  );
  for (let start = 0; start < files; start += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, files - start) }, async (_, k) => {
        const i = start + k;
        const name = `f-${String(i).padStart(6, "0")}.json`;
        if (corruptAt.has(i)) {
          corruptNames.add(name);
          await writeFile(
            join(dir, name),
            `{"id": ${i}, "file": ${i}, "amount": 1.0, "note": "a"}\n{"id": \n`,
          );
          return;
        }
        const lines: string[] = [];
        for (let j = 0; j < rowsPerFile; j++) {
          lines.push(JSON.stringify({ id: i * rowsPerFile + j, file: i, amount: j / 10, note }));
        }
        await writeFile(join(dir, name), `${lines.join("\n")}\n`);
        rows.set(name, rowsPerFile);
      }),
    );
  }
  return { dir, rows, corrupt: corruptNames };
}

/** Rows per source file name in `table`, against what landed: the mismatches (empty when exact). */
async function checkRows(table: string, landing: Landing): Promise<string[]> {
  const counted = await spark.sql(
    `SELECT _source_file AS f, count(*) AS n FROM ${table} GROUP BY _source_file`,
  );
  const actual = new Map<string, number>();
  for (const row of counted) {
    const name = decodeURIComponent(String(row.f).split("/").pop() ?? "");
    actual.set(name, (actual.get(name) ?? 0) + Number(row.n));
  }
  const problems: string[] = [];
  for (const [name, n] of landing.rows) {
    if (actual.get(name) !== n) problems.push(`${name}: ${actual.get(name) ?? 0} rows, expected ${n}`);
  }
  for (const name of landing.corrupt) if (actual.has(name)) problems.push(`${name} (corrupt) has rows`);
  return problems;
}

async function snapshots(table: string): Promise<number> {
  const [row] = await spark.sql(
    `SELECT count(*) AS n FROM ${table}.snapshots WHERE coalesce(summary['added-records'], '0') <> '0'`,
  );
  return Number(row?.n ?? 0);
}

// ---------------------------------------------------------------- lakeferry

async function lakeferryRun(
  landing: Landing,
  workers: number,
  label: string,
): Promise<{ seconds: number; discovered: number; snapshots: number; failed: number; problems: string[] }> {
  const id = `${runId}_${label}_${workers}w`;
  const name = `vs-${id.replace(/_/g, "-")}`;
  const table = `lake.bench_vs_${runId}.lf_${label}_${workers}w`;
  const env = {
    LAKEFERRY_DB_SCHEMA: `bench_vs_${id}`,
    LAKEFERRY_QUEUE_PREFIX: `bench-vs-${id}`,
    LAKEFERRY_LOG_LEVEL: "warn",
  };
  await lakeferry(["migrate"], env);
  const spec = join(landing.dir, `..`, `ingestion-${id}.yaml`);
  await writeFile(
    spec,
    [
      `name: ${name}`,
      `source: ${JSON.stringify(`file://${landing.dir}/`)}`,
      "format: json",
      `schema: ${JSON.stringify(SCHEMA)}`,
      `pattern: "*.json"`,
      `table: ${table}`,
      "retry: { attempts: 3, backoffMs: 500 }",
      // Files are written whole before the pass, as Option 3 reads them: no wait (the local default is 5 s).
      "listing: { minAgeMs: 0 }",
      "",
    ].join("\n"),
  );
  await lakeferry(["ingestion", "apply", "-f", spec], env);
  const fleet = await Promise.all(Array.from({ length: workers }, (_, k) => startWorker(env, `${id}-${k}`)));
  const db: Database = createDatabase({
    connectionString: databaseUrl,
    schema: env.LAKEFERRY_DB_SCHEMA,
    maxConnections: 2,
  });
  const total = landing.rows.size + landing.corrupt.size;
  try {
    const started = performance.now();
    await lakeferry(["discover", name], env);
    const discovered = (performance.now() - started) / 1000;
    for (;;) {
      const { rows } = await db.pool.query<{ settled: number; failed: number }>(
        `SELECT count(*) FILTER (WHERE status IN ('SUCCESS', 'FAILED', 'SKIPPED'))::int AS settled,
                count(*) FILTER (WHERE status = 'FAILED')::int AS failed
           FROM processed_files`,
      );
      const counts = rows[0] ?? { settled: 0, failed: 0 };
      if (counts.settled >= total) {
        const seconds = (performance.now() - started) / 1000;
        tables.push(table);
        return {
          seconds,
          discovered,
          snapshots: await snapshots(table),
          failed: counts.failed,
          problems: await checkRows(table, landing),
        };
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await Promise.all(fleet.map(stopWorker));
    await db.pool.query(`DROP SCHEMA IF EXISTS "${env.LAKEFERRY_DB_SCHEMA}" CASCADE`);
    await db.close();
  }
}

// ---------------------------------------------------------------- the run

interface Line {
  scenario: string;
  contender: string;
  seconds: number;
  snapshots: number | string;
  check: string;
  vsOption3?: number;
  vsPlain?: number;
}

const lines: Line[] = [];
/** Every table the run made, dropped at the end. */
const tables: string[] = [];

async function scenario(label: string, description: string, landing: Landing, python: string): Promise<void> {
  const ns = `lake.bench_vs_${runId}`;
  await spark.sqlCommand(`CREATE NAMESPACE IF NOT EXISTS ${ns}`);
  /** Runs one peer job into a table of its own and records its line. */
  const runPeer = async (
    mode: "batch" | "stream",
    name: string,
    contender: string,
  ): Promise<{ seconds: number; error: string | null }> => {
    const table = `${ns}.${name}_${label}`;
    tables.push(table);
    const checkpoint =
      mode === "stream" ? await mkdtemp(join(tmpdir(), "lakeferry-vs-checkpoint-")) : undefined;
    const result = await peer(python, mode, landing.dir, table, checkpoint);
    if (checkpoint) await rm(checkpoint, { recursive: true, force: true });
    lines.push({
      scenario: description,
      contender,
      seconds: result.seconds,
      snapshots: result.error ? "-" : await snapshots(table),
      check: result.error ? `failed: ${result.error}` : summarise(await checkRows(table, landing)),
    });
    return result;
  };
  const plain = await runPeer("batch", "plain", "plain batch job (the limit)");
  const option3 = await runPeer("stream", "option3", "Option 3 (streaming, availableNow)");
  for (const workers of options.workers) {
    const result = await lakeferryRun(landing, workers, label);
    lines.push({
      scenario: description,
      contender: `lakeferry, ${workers} worker${workers > 1 ? "s" : ""}`,
      seconds: result.seconds,
      snapshots: result.snapshots,
      check: `${summarise(result.problems)}; FAILED ${result.failed}`,
      ...(option3.error ? {} : { vsOption3: result.seconds / option3.seconds }),
      ...(plain.error ? {} : { vsPlain: result.seconds / plain.seconds }),
    });
    console.error(
      `  ${description}: lakeferry ${workers}w ${result.seconds.toFixed(1)} s ` +
        `(\`lakeferry discover\` returned after ${result.discovered.toFixed(1)} s)`,
    );
  }
}

function summarise(problems: string[]): string {
  return problems.length === 0
    ? "rows per file exact"
    : `${problems.length} wrong: ${problems.slice(0, 3).join("; ")}`;
}

const python = await peerPython();
const version = await spark.version();
console.error(`Spark ${version} at ${sparkRemote}; run ${runId}`);
const landings: string[] = [];
try {
  if (options.only.has("a")) {
    for (const files of options.small) {
      const landing = await land(`a${files}`, files, 10);
      landings.push(landing.dir);
      await scenario(`a${files}`, `(a) ${files} files × 10 rows`, landing, python);
    }
  }
  if (options.only.has("b")) {
    // ~largeMb MB per file: rows of about 1 KB.
    const rowsPerFile = Math.round((options.largeMb * 1024 * 1024) / 1060);
    const landing = await land("b", options.large, rowsPerFile, 0, 1000);
    landings.push(landing.dir);
    await scenario("b", `(b) ${options.large} files × ~${options.largeMb} MB`, landing, python);
  }
  if (options.only.has("c")) {
    const landing = await land("c", options.corruptOf, 10, options.corrupt);
    landings.push(landing.dir);
    await scenario("c", `(c) ${options.corruptOf} files, ${options.corrupt} corrupt`, landing, python);
  }
} finally {
  for (const dir of landings) await rm(dir, { recursive: true, force: true });
  for (const table of tables) {
    await spark.sqlCommand(`DROP TABLE IF EXISTS ${table} PURGE`).catch(() => undefined);
  }
  await spark.sqlCommand(`DROP NAMESPACE IF EXISTS lake.bench_vs_${runId}`).catch(() => undefined);
  await spark.close();
}

const ratio = (x: number | undefined): string => (x === undefined ? "-" : `${x.toFixed(2)}×`);
console.log(`\nSpark ${version}, one run (${new Date().toISOString()})\n`);
console.log("| scenario | contender | seconds | ÷ Option 3 | ÷ plain job | snapshots | check |");
console.log("|---|---|---|---|---|---|---|");
for (const l of lines) {
  console.log(
    `| ${l.scenario} | ${l.contender} | ${l.seconds.toFixed(2)} | ${ratio(l.vsOption3)} | ${ratio(l.vsPlain)} | ${l.snapshots} | ${l.check} |`,
  );
}
