/**
 * Shared by the end-to-end tests: run the real `lakeferry` CLI and worker/discoverer processes against the
 * real Postgres, Redis and Spark, each test in its own Postgres schema, BullMQ prefix, Iceberg table and
 * source folder.
 */
import { spawn, execFile, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createDatabase, type Database } from "@lakeferry/db";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const MAIN = join(ROOT, "apps/cli/src/main.ts");
const run = promisify(execFile);

/** A variable the services script exports; the tests cannot run without it. */
export function serviceEnv(name: "DATABASE_URL" | "REDIS_URL" | "SPARK_REMOTE"): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run eval "$(bash scripts/services.sh env)" before the tests`);
  }
  return value;
}

export interface Sandbox {
  /** Short random id used in every name below. */
  id: string;
  /** Ingestion name. */
  name: string;
  /** Postgres schema (LAKEFERRY_DB_SCHEMA). */
  schema: string;
  /** BullMQ prefix (LAKEFERRY_QUEUE_PREFIX). */
  prefix: string;
  /** Iceberg table `lake.<ns>.t`. */
  table: string;
  /** Temp folder: `source/` holds the landing files, `logs/` the processes' output. */
  dir: string;
  source: string;
  /** file:// URI of `source/` (with a trailing slash). */
  sourceUri: string;
  /** Environment for the CLI and the processes. */
  env: Record<string, string>;
  /** Direct Postgres access to this sandbox's schema, for assertions. */
  db: Database;
}

export async function createSandbox(label: string): Promise<Sandbox> {
  const id = randomBytes(4).toString("hex");
  const dir = await mkdtemp(join(tmpdir(), `lakeferry-${label}-`));
  const source = join(dir, "source");
  await mkdir(source, { recursive: true });
  await mkdir(join(dir, "logs"), { recursive: true });
  const schema = `e2e_${label.replace(/[^a-z0-9]/g, "_")}_${id}`;
  const prefix = `e2e-${label}-${id}`;
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    DATABASE_URL: serviceEnv("DATABASE_URL"),
    REDIS_URL: serviceEnv("REDIS_URL"),
    SPARK_REMOTE: serviceEnv("SPARK_REMOTE"),
    LAKEFERRY_DB_SCHEMA: schema,
    LAKEFERRY_QUEUE_PREFIX: prefix,
    LAKEFERRY_LOG_LEVEL: "info",
  };
  delete env.LAKEFERRY_FAULT_INJECTION;
  return {
    id,
    name: `${label}-${id}`,
    schema,
    prefix,
    table: `lake.e2e_${id}.t`,
    dir,
    source,
    sourceUri: `file://${source}/`,
    env,
    db: createDatabase({ connectionString: env.DATABASE_URL!, schema, maxConnections: 2 }),
  };
}

/** Drops what a passed test made (a failed test's state stays for inspection). */
export async function removeSandbox(box: Sandbox, spark?: boolean): Promise<void> {
  await box.db.pool.query(`DROP SCHEMA IF EXISTS "${box.schema}" CASCADE`);
  await box.db.close();
  await deleteQueueKeys(box);
  await rm(box.dir, { recursive: true, force: true });
  if (spark) await cli(["sql", "--write", `DROP TABLE IF EXISTS ${box.table} PURGE`], box.env);
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `lakeferry ARGS…` as its own process, the way a user would. */
export async function cli(
  args: string[],
  env: Record<string, string>,
  options: { timeoutMs?: number; input?: string } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], {
      cwd: ROOT,
      env: { ...env, LAKEFERRY_LOG_LEVEL: env.CLI_LOG_LEVEL ?? "warn" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 120_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** `lakeferry ARGS… --json`, expecting exit 0; the parsed output. */
export async function cliJson<T>(args: string[], env: Record<string, string>, expectCode = 0): Promise<T> {
  const result = await cli([...args, "--json"], env);
  if (result.code !== expectCode) {
    throw new Error(
      `lakeferry ${args.join(" ")} exited ${result.code} (expected ${expectCode}): ${result.stderr}${result.stdout}`,
    );
  }
  return JSON.parse(result.stdout) as T;
}

/** A long-running `lakeferry worker` / `lakeferry discoverer` child; its output goes to a log file. */
export class LakeferryProcess {
  readonly child: ChildProcess;
  readonly logFile: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(box: Sandbox, args: string[], extraEnv: Record<string, string> = {}, logName?: string) {
    this.logFile = join(box.dir, "logs", `${logName ?? args[0]}-${randomBytes(3).toString("hex")}.log`);
    const log = createWriteStream(this.logFile);
    this.child = spawn(process.execPath, ["--import", "tsx", MAIN, ...args], {
      cwd: ROOT,
      env: { ...box.env, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout?.pipe(log, { end: false });
    this.child.stderr?.pipe(log, { end: false });
    this.exited = new Promise((resolvePromise) => {
      this.child.on("exit", (code, signal) => {
        this.#exit = { code, signal };
        resolvePromise({ code, signal });
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.#exit === undefined;
  }

  /** SIGTERM, then the exit (code 0 expected from a clean stop). */
  async stop(timeoutMs = 40_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.running) return this.exited;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }

  kill(): void {
    if (this.running) this.child.kill("SIGKILL");
  }
}

/** Polls `check` until it returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function until<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  options: { timeoutMs: number; intervalMs?: number },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${options.timeoutMs} ms waiting for ${what}${last ? `: ${last instanceof Error ? last.message : JSON.stringify(last)}` : ""}`,
      );
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 500));
  }
}

/** Writes `count` JSON-lines files `f-0000.json`…; file i holds (i % 3) + 1 rows. Returns rows per file. */
export async function writeJsonFiles(
  dir: string,
  count: number,
  options: { startAt?: number; subdir?: string } = {},
): Promise<Map<string, number>> {
  const rows = new Map<string, number>();
  const target = options.subdir ? join(dir, options.subdir) : dir;
  await mkdir(target, { recursive: true });
  const writes: Promise<void>[] = [];
  for (let n = 0; n < count; n++) {
    const i = (options.startAt ?? 0) + n;
    const path = join(target, `f-${String(i).padStart(4, "0")}.json`);
    const lines = Array.from({ length: (i % 3) + 1 }, (_, j) =>
      JSON.stringify({ id: i * 10 + j, file: i, amount: i + j / 10 }),
    );
    rows.set(`file://${path}`, lines.length);
    writes.push(writeFile(path, `${lines.join("\n")}\n`));
  }
  await Promise.all(writes);
  return rows;
}

/** An ingestion YAML for this sandbox's source folder and table. */
export function ingestionYaml(box: Sandbox, extra: Record<string, string> = {}): string {
  const fields: Record<string, string> = {
    name: box.name,
    source: JSON.stringify(box.sourceUri),
    format: "json",
    schema: JSON.stringify("id BIGINT, file INT, amount DOUBLE"),
    pattern: JSON.stringify("**/*.json"),
    table: box.table,
    retry: "{ attempts: 3, backoffMs: 500 }",
    // Tests write whole files and discover at once; the local default (5 s) would leave them for later.
    listing: "{ minAgeMs: 0 }",
    ...extra,
  };
  return `${Object.entries(fields)
    .map(([key, value]) => `${key}: ${value}`)
    .join("\n")}\n`;
}

/** migrate + ingestion apply for this sandbox. */
export async function setUpIngestion(box: Sandbox, extra: Record<string, string> = {}): Promise<void> {
  const migrated = await cli(["migrate"], box.env);
  if (migrated.code !== 0) throw new Error(`migrate failed: ${migrated.stderr}`);
  const file = join(box.dir, "ingestion.yaml");
  await writeFile(file, ingestionYaml(box, extra));
  const applied = await cli(["ingestion", "apply", "-f", file], box.env);
  if (applied.code !== 0) throw new Error(`ingestion apply failed: ${applied.stderr}`);
}

/** Deletes every Redis key of this sandbox's prefix at once: FLUSHALL, limited to this test's deployment. */
export async function deleteQueueKeys(box: Sandbox): Promise<number> {
  const script =
    "local keys = redis.call('KEYS', ARGV[1]) for i = 1, #keys do redis.call('DEL', keys[i]) end return #keys";
  const { stdout } = await run("redis-cli", [
    "-u",
    box.env.REDIS_URL!,
    "EVAL",
    script,
    "0",
    `${box.prefix}:*`,
  ]);
  return Number(stdout.trim());
}

/** One Redis command against the shared server (e.g. LLEN of a queue list). */
export async function redis(box: Sandbox, ...args: string[]): Promise<string> {
  const { stdout } = await run("redis-cli", ["-u", box.env.REDIS_URL!, ...args]);
  return stdout.trim();
}

/** Rows of a SQL query on this sandbox's Postgres schema, for assertions. */
export async function query<T extends Record<string, unknown>>(
  box: Sandbox,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  return (await box.db.pool.query<T>(sql, params)).rows;
}

export type StatusCounts = Record<"PENDING" | "PROCESSING" | "SUCCESS" | "FAILED" | "SKIPPED", number>;

export async function statusOf(box: Sandbox): Promise<StatusCounts> {
  return cliJson<StatusCounts>(["status", box.name], box.env);
}

/** Rows per `_source_file` in the sandbox's table, through `lakeferry sql`. */
export async function rowsPerFile(box: Sandbox): Promise<Map<string, number>> {
  const rows = await cliJson<{ f: string; n: number }[]>(
    ["sql", `SELECT _source_file AS f, count(*) AS n FROM ${box.table} GROUP BY _source_file`],
    box.env,
  );
  return new Map(rows.map((row) => [row.f, Number(row.n)]));
}

/** Every file's rows are in the table exactly once, and nothing else is. */
export function expectExactlyOnce(actual: Map<string, number>, expected: Map<string, number>): string[] {
  const problems: string[] = [];
  for (const [file, n] of expected) {
    const got = actual.get(file) ?? 0;
    if (got !== n) problems.push(`${file}: ${got} rows in the table, ${n} in the file`);
  }
  for (const file of actual.keys()) {
    if (!expected.has(file)) problems.push(`${file}: in the table but not expected`);
  }
  return problems;
}
