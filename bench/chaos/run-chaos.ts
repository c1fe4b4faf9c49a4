import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { errorMessage } from "@lakeferry/core";
import { createDatabase, type Database } from "@lakeferry/db";
import { SparkConnectClient } from "@lakeferry/spark-connect";
import type { ChaosOptions } from "./chaos-options.ts";
import { formatSummary, type ChaosSummary } from "./chaos-report.ts";
import { ChaosStack, sleep } from "./chaos-stack.ts";
import { FaultInjector } from "./fault-injector.ts";
import { planFaults } from "./fault-plan.ts";
import { Fleet } from "./fleet.ts";
import { landWave, LANDING_SCHEMA, planLanding } from "./landing.ts";
import { Rng } from "./rng.ts";
import { evidence, judge } from "./verdict.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const BIN = join(ROOT, "apps/cli/bin/lakeferry.js");
/** Files land in this many waves over the first 60 % of the fault window (the first before any fault). */
const WAVES = 8;

export interface ChaosResult {
  ok: boolean;
  summary: ChaosSummary;
  /** The printed tables. */
  report: string;
}

/**
 * One chaos run: its own Postgres, Redis and Spark, a discoverer and N workers reaching Postgres and
 * Spark through fault proxies, files landing in waves while seeded faults hit every part, then a bounded
 * drain and a verdict read from the Iceberg table. A failed run keeps its schema, table and logs.
 */
export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const startedAt = Date.now();
  const rng = new Rng(o.seed);
  const repeat = `npm run chaos -- --minutes ${o.minutes} --seed ${o.seed} --files ${o.files} --workers ${o.workers} --corrupt ${o.corrupt}`;
  o.log(`seed ${o.seed} (repeat: ${repeat})`);

  const id = randomBytes(4).toString("hex");
  const dir = await mkdtemp(join(tmpdir(), "lakeferry-chaos-"));
  const source = join(dir, "source");
  const logDir = join(dir, "logs");
  await mkdir(source, { recursive: true });
  await mkdir(logDir, { recursive: true });
  const box = {
    name: `chaos-${id}`,
    schema: `chaos_${id}`,
    prefix: `chaos-${id}`,
    table: `lake.chaos_${id}.t`,
  };
  o.log(`box: schema ${box.schema}, prefix ${box.prefix}, table ${box.table}, folder ${dir}`);

  const stack = new ChaosStack(o.stack, ROOT);
  o.log(
    `starting the chaos services (${o.stack.dir}: Postgres ${o.stack.pgPort}, Redis ${o.stack.redisPort}, Spark ${o.stack.sparkPort})`,
  );
  await stack.up();
  const direct = stack.direct;
  const baseEnv: Record<string, string> = {
    ...(process.env as Record<string, string>),
    LAKEFERRY_DB_SCHEMA: box.schema,
    LAKEFERRY_QUEUE_PREFIX: box.prefix,
    LAKEFERRY_LOG_LEVEL: "info",
  };
  delete baseEnv.LAKEFERRY_FAULT_INJECTION;

  const db = createDatabase({ connectionString: direct.databaseUrl, schema: box.schema, maxConnections: 3 });
  const spark = new SparkConnectClient({ remote: direct.sparkRemote, clientType: "lakeferry-chaos" });
  const fleet = new Fleet({
    bin: BIN,
    workers: o.workers,
    logDir,
    log: (line) => o.log(line),
    env: {
      ...baseEnv,
      ...connectionEnv(stack.proxied),
      LAKEFERRY_LEASE_MS: String(o.worker.leaseMs),
      LAKEFERRY_RECONCILE_INTERVAL_MS: String(o.worker.reconcileIntervalMs),
      LAKEFERRY_BATCH_GRACE_MS: String(o.worker.batchGraceMs),
      LAKEFERRY_BATCH_MAX_FILES: String(o.worker.batchMaxFiles),
      LAKEFERRY_WORKER_CONCURRENCY: String(o.worker.concurrency),
      LAKEFERRY_SHUTDOWN_TIMEOUT_MS: "5000",
    },
  });
  let summary: ChaosSummary | undefined;
  let progress: NodeJS.Timeout | undefined;
  try {
    const directEnv = { ...baseEnv, ...connectionEnv(direct) };
    await lakeferry(["migrate"], directEnv);
    const yaml = join(dir, "ingestion.yaml");
    await writeFile(
      yaml,
      [
        `name: ${box.name}`,
        `source: ${JSON.stringify(`file://${source}/`)}`,
        "format: json",
        `schema: ${JSON.stringify(LANDING_SCHEMA)}`,
        'pattern: "**/*.json"',
        `table: ${box.table}`,
        'schedule: "*/2 * * * * *"',
        "retry: { attempts: 5, backoffMs: 500 }",
        "",
      ].join("\n"),
    );
    await lakeferry(["ingestion", "apply", "-f", yaml], directEnv);

    const windowMs = Math.round(o.minutes * 60_000);
    const landed = planLanding(rng.fork("landing"), source, {
      files: o.files,
      corrupt: o.corrupt,
      waves: WAVES,
    });
    const plan = planFaults(rng.fork("faults"), o.faults, {
      windowMs,
      workers: o.workers,
      leaseMs: o.worker.leaseMs,
    });

    // The faults start once the fleet works: the first wave discovered and a first batch written.
    fleet.startAll();
    o.log(`landed wave 0: ${await landWave(landed, 0)} files`);
    await warmUp(db, o.log);
    const setupDone = Date.now();
    const injector = new FaultInjector({ stack, fleet, spark, db, table: box.table, log: o.log });
    progress = setInterval(() => {
      void statusLine(db, landed.length).then((line) =>
        o.log(`${line} | ${fleet.running}/${fleet.slots.length} processes`),
      );
    }, 15_000);
    const landing = (async () => {
      for (let wave = 1; wave < WAVES; wave++) {
        await sleep((0.6 * windowMs) / (WAVES - 1));
        const n = await landWave(landed, wave);
        o.log(`landed wave ${wave}: ${n} files`);
      }
    })();
    await Promise.all([landing, injector.run(plan), sleep(windowMs)]);
    const faultsDone = Date.now();

    o.log("faults over: healing the proxies and services, every process running; draining");
    await stack.heal();
    fleet.ensureAll();
    const drained = await drain(db, landed.length, o.drainTimeoutMs, o.log);
    clearInterval(progress);
    await fleet.stop(20_000);
    const drainDone = Date.now();

    // The driver's own session may have to be renewed once after a Spark restart.
    const verdict = await withRetries(() => judge({ spark, db, table: box.table, landed }));
    const offenders = [
      ...verdict.lost,
      ...verdict.duplicated,
      ...verdict.wronglyFailed,
      ...verdict.corruptNotFailed,
      ...verdict.unsettled,
    ].map((offender) => offender.uri);
    const proof = await evidence({ spark, db, table: box.table, uris: [...new Set(offenders)] }).catch(
      (error: unknown) => [`  (evidence could not be read: ${errorMessage(error)})`],
    );
    const undecided = await db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM write_batches WHERE state IN ('OPEN', 'PUBLISHING')",
    );
    const judged = Date.now();
    const s = (from: number, to: number): number => Math.round((to - from) / 1000);
    summary = {
      seed: o.seed,
      minutes: o.minutes,
      workers: o.workers,
      planned: o.faults,
      tally: injector.tally,
      verdict,
      unplannedExits: fleet.unplannedExits,
      timings: {
        setup: s(startedAt, setupDone),
        faults: s(setupDone, faultsDone),
        drain: s(faultsDone, drainDone),
        judge: s(drainDone, judged),
        total: s(startedAt, judged),
      },
      drained,
      undecidedBatches: undecided.rows[0]?.n ?? 0,
      evidence: proof,
      logDir,
      repeat,
    };
    if (verdict.ok) {
      await spark.sqlCommand(`DROP TABLE IF EXISTS ${box.table} PURGE`).catch(() => undefined);
      await db.pool.query(`DROP SCHEMA IF EXISTS "${box.schema}" CASCADE`).catch(() => undefined);
    } else {
      const env = Object.entries(stack.servicesEnv)
        .map(([key, value]) => `${key}=${value}`)
        .join(" ");
      o.log(
        `kept for inspection: schema ${box.schema} in ${direct.databaseUrl}, table ${box.table}, logs ${logDir}; ` +
          `bring the chaos services back with: ${env} bash scripts/services.sh up postgres redis spark`,
      );
    }
    return { ok: verdict.ok, summary, report: formatSummary(summary) };
  } finally {
    clearInterval(progress);
    await fleet.stop(5_000).catch(() => undefined);
    await spark.close().catch(() => undefined);
    await db.close().catch(() => undefined);
    await stack.close(o.keepStack).catch(() => undefined);
    if (summary?.verdict.ok) {
      await rm(source, { recursive: true, force: true });
      if (!o.keepLogs) await rm(dir, { recursive: true, force: true });
    }
  }
}

function connectionEnv(c: {
  databaseUrl: string;
  redisUrl: string;
  sparkRemote: string;
}): Record<string, string> {
  return { DATABASE_URL: c.databaseUrl, REDIS_URL: c.redisUrl, SPARK_REMOTE: c.sparkRemote };
}

async function withRetries<T>(run: () => Promise<T>, attempts = 4): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      if (attempt >= attempts) throw error;
      await sleep(3_000);
    }
  }
}

/** Waits until a first file has landed (the fleet is up and working), at most four minutes. */
async function warmUp(db: Database, log: (line: string) => void): Promise<void> {
  const started = Date.now();
  while (Date.now() - started < 240_000) {
    const counts: Record<string, number> = await statusCounts(db).catch(() => ({}));
    if ((counts.SUCCESS ?? 0) > 0) {
      log(
        `the fleet is working (first files landed after ${Math.round((Date.now() - started) / 1000)} s): faults start`,
      );
      return;
    }
    await sleep(500);
  }
  throw new Error("no file landed within 4 minutes of starting the fleet; see the logs");
}

/** Waits until every landed file is registered and none is PENDING or PROCESSING, or `timeoutMs` passes. */
async function drain(
  db: Database,
  files: number,
  timeoutMs: number,
  log: (line: string) => void,
): Promise<string> {
  const started = Date.now();
  let last = "nothing read";
  let lastLog = 0;
  while (Date.now() - started < timeoutMs) {
    try {
      const counts = await statusCounts(db);
      const registered = Object.values(counts).reduce((a, b) => a + b, 0);
      const open = (counts.PENDING ?? 0) + (counts.PROCESSING ?? 0);
      last = `${registered} registered, ${open} PENDING/PROCESSING`;
      if (registered === files && open === 0) {
        return `settled in ${Math.round((Date.now() - started) / 1000)} s`;
      }
    } catch (error) {
      last = `Postgres: ${errorMessage(error)}`;
    }
    if (Date.now() - lastLog > 15_000) {
      lastLog = Date.now();
      log(`draining: ${last}`);
    }
    await sleep(1_000);
  }
  return `NOT settled after ${Math.round(timeoutMs / 1000)} s (${last})`;
}

async function statusCounts(db: Database): Promise<Record<string, number>> {
  const { rows } = await db.pool.query<{ status: string; n: number }>(
    "SELECT status::text AS status, count(*)::int AS n FROM processed_files GROUP BY status",
  );
  return Object.fromEntries(rows.map((row) => [row.status, row.n]));
}

async function statusLine(db: Database, files: number): Promise<string> {
  try {
    const counts = await statusCounts(db);
    const registered = Object.values(counts).reduce((a, b) => a + b, 0);
    const parts = ["PENDING", "PROCESSING", "SUCCESS", "FAILED"].map((s) => `${s} ${counts[s] ?? 0}`);
    return `files: ${registered}/${files} registered, ${parts.join(", ")}`;
  } catch (error) {
    return `files: (Postgres: ${errorMessage(error)})`;
  }
}

/** `lakeferry ARGS…` as its own process; throws with its output unless it exits 0. */
function lakeferry(args: string[], env: Record<string, string>): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...env, LAKEFERRY_LOG_LEVEL: "warn" },
    });
    let output = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
    child.on("error", reject);
    child.on("close", (code) =>
      code === 0
        ? resolvePromise(output)
        : reject(new Error(`lakeferry ${args.join(" ")} exited ${code}: ${output}`)),
    );
  });
}
