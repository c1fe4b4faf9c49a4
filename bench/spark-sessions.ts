/**
 * What `lakeferry sql` calls leave behind (issue 7): runs the real binary N times against a Spark Connect
 * server of its own (lakeferry-spark-bench on port 15042, started and stopped here, so that only these
 * calls touch it) and prints that server's Iceberg catalog connections in Postgres (pg_stat_activity rows
 * with its application_name) before, every 100 calls, and after. Spark 4.0 keeps each session's catalog
 * connection open after the session ends (SPARK-54367), so a session per call would add one per call (until
 * Postgres ends it after LAKEFERRY_CATALOG_IDLE_MS idle); the CLI's kept session adds none. The kept
 * session's id lives in a temp XDG_STATE_HOME.
 *
 *   eval "$(bash scripts/services.sh env)"
 *   npx tsx bench/spark-sessions.ts [calls=500] [concurrency=1]
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createDatabase } from "@lakeferry/db";

const calls = Number(process.argv[2] ?? 500);
const concurrency = Number(process.argv[3] ?? 1);
const databaseUrl = process.env.DATABASE_URL;
if (!databaseUrl) throw new Error('DATABASE_URL is not set; run: eval "$(bash scripts/services.sh env)"');

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const BIN = join(ROOT, "apps/cli/bin/lakeferry.js");
const SPARK_NAME = "lakeferry-spark-bench";
const PORT = 15042;
const sparkEnv = {
  ...process.env,
  LAKEFERRY_SPARK_NAME: SPARK_NAME,
  LAKEFERRY_SPARK_PORT: String(PORT),
  LAKEFERRY_SPARK_MEMORY: "1g",
};
const stateHome = await mkdtemp(join(tmpdir(), "lakeferry-bench-sessions-"));
const cliEnv = { ...process.env, SPARK_REMOTE: `sc://127.0.0.1:${PORT}`, XDG_STATE_HOME: stateHome };
const namespace = `lake.bench_sessions_${randomBytes(4).toString("hex")}`;
const table = `${namespace}.t`;
const db = createDatabase({ connectionString: databaseUrl, maxConnections: 1 });

function services(action: "up" | "down"): Promise<unknown> {
  return promisify(execFile)("bash", [join(ROOT, "scripts/services.sh"), action, "spark"], {
    env: sparkEnv,
    timeout: 300_000,
  });
}

/** `lakeferry sql QUERY` as its own process; its exit code and output. */
function lakeferrySql(query: string): Promise<{ code: number; output: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, "sql", query], { cwd: ROOT, env: cliEnv });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ code: code ?? -1, output }));
  });
}

async function mustRun(query: string): Promise<void> {
  const result = await lakeferrySql(query);
  if (result.code !== 0) throw new Error(`lakeferry sql "${query}" exited ${result.code}: ${result.output}`);
}

/** This server's catalog connections, and how many of them are idle. */
async function catalogConnections(): Promise<string> {
  const { rows } = await db.pool.query<{ n: number; idle: number }>(
    "SELECT count(*)::int AS n, (count(*) FILTER (WHERE state = 'idle'))::int AS idle " +
      "FROM pg_stat_activity WHERE application_name = $1",
    [SPARK_NAME],
  );
  return `${rows[0]!.n} (${rows[0]!.idle} idle)`;
}

async function keptSessionIds(): Promise<string[]> {
  const dir = join(stateHome, "lakeferry");
  const files = await readdir(dir).catch(() => []);
  return Promise.all(files.map(async (file) => (await readFile(join(dir, file), "utf8")).trim()));
}

try {
  await services("up");
  // services.sh may report the server up just before it accepts calls.
  for (let attempt = 0; (await lakeferrySql("SELECT 1")).code !== 0; attempt++) {
    if (attempt === 60) throw new Error(`Spark Connect on port ${PORT} does not answer`);
    await new Promise((r) => setTimeout(r, 1_000));
  }
  await mustRun(`CREATE NAMESPACE ${namespace}`);
  await mustRun(`CREATE TABLE ${table} (id BIGINT) USING iceberg`);
  await mustRun(`INSERT INTO ${table} VALUES (1), (2), (3)`);

  const sessionsBefore = await keptSessionIds();
  console.log(`lakeferry sql x ${calls} (${concurrency} at a time) against ${SPARK_NAME}`);
  console.log(`  catalog connections before           ${await catalogConnections()}`);
  const started = performance.now();
  let claimed = 0;
  let done = 0;
  let failed = 0;
  let lastFailure = "";
  const query = `SELECT count(*) AS n FROM ${table}`;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (claimed < calls) {
        claimed++;
        const result = await lakeferrySql(query);
        if (result.code === 0) done++;
        else {
          failed++;
          lastFailure = result.output.trim();
        }
        if ((done + failed) % 100 === 0 && done + failed < calls) {
          console.log(
            `  after ${String(done + failed).padEnd(4)} calls                    ${await catalogConnections()}`,
          );
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1_000;
  console.log(`  catalog connections after ${String(calls).padEnd(4)} calls ${await catalogConnections()}`);
  console.log(
    `  calls ok / failed                    ${done} / ${failed}${failed ? `  (last: ${lastFailure})` : ""}`,
  );
  console.log(
    `  time                                 ${seconds.toFixed(0)} s, ${(seconds / calls).toFixed(2)} s per call`,
  );
  console.log(
    `  kept session id                      ${[...sessionsBefore, ...(await keptSessionIds())].join(" -> ")}`,
  );
  await mustRun(`DROP TABLE ${table} PURGE`);
  await mustRun(`DROP NAMESPACE ${namespace}`);
} finally {
  await services("down");
  await db.close();
  await rm(stateHome, { recursive: true, force: true });
}
