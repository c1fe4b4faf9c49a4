/**
 * What lakeferry's state costs in Postgres per file, and what state retention leaves of it. Fills a schema of
 * its own with `files` files (default 1,000,000) through the real SQL paths, as discovery and workers write
 * them: discovery runs of 10,000 files registering pages of 1,000 (registerFiles), every 20th file first
 * claimed and handed back for a retry (claimFiles, recordOutcomes PENDING), then every file claimed and
 * written in group commits of `batch` files (default 100: openBatch, beginPublish, recordOutcomes COMMITTED).
 * Paths look like s3://bucket/landing/2026/12/02/orders-000123.json, etags like S3's (32 hex digits), worker
 * names like a Kubernetes pod's.
 *
 * Then prints pg_total_relation_size per table and per index, and bytes per file, beside the seed's estimate
 * (about 770 bytes a file with indexes; the goal is at most half of it): as written (with the dead row
 * versions the updates leave, before autovacuum reuses them), compacted (VACUUM FULL), and compacted after a
 * prune of everything settled (StatePruner, archive off: this bench is Postgres only; the archive's cost is
 * Iceberg's). The schema is dropped at the end.
 *
 * With `archive` as the fourth argument the prune archives to an Iceberg table of its own through the local
 * Spark (start it first: `bash scripts/services.sh up spark`), and the archive's rate is printed.
 *
 *   npm run bench:state-size -- [files=1000000] [batch=100] [parallel=3] [archive]
 */
import { randomBytes, randomUUID } from "node:crypto";
import { createLogger } from "@lakeferry/core";
import {
  beginPublish,
  claimFiles,
  createDatabase,
  finishRun,
  migrate,
  openBatch,
  recordOutcomes,
  registerFiles,
  startRun,
  upsertIngestion,
} from "@lakeferry/db";
import { StatePruner } from "@lakeferry/pipeline";
import { SparkConnectClient } from "@lakeferry/spark-connect";
import { need } from "./service-env.ts";

const files = Number(process.argv[2] ?? 1_000_000);
const batchFiles = Number(process.argv[3] ?? 100);
const parallel = Number(process.argv[4] ?? 3);
const archiveTable =
  process.argv[5] === "archive" ? `lake.bench_${randomBytes(4).toString("hex")}.state_archive` : undefined;
if (!(Number.isSafeInteger(files) && files >= 1_000 && files % 1_000 === 0)) {
  throw new Error(`files must be a whole number of thousands (at least 1000), got ${process.argv[2]}`);
}
const PAGE = 1_000;
const RUN_FILES = 10_000;
const RETRY_EVERY = 20;
const SEED_BYTES_PER_FILE = 770;

const schema = `bench_state_${randomBytes(4).toString("hex")}`;
const db = createDatabase({ connectionString: need("DATABASE_URL"), schema, maxConnections: parallel + 2 });
const worker = (n: number): string =>
  `lakeferry-worker-7d9f8c6b5-x2k4p-${n}-${randomBytes(3).toString("hex")}`;

/** s3://bucket/landing/2026/<month>/<day>/orders-<n>.json: about 50 characters, as the seed's example. */
function pathOf(n: number): string {
  const day = Math.floor(n / 5_000);
  const month = String(1 + (Math.floor(day / 28) % 12)).padStart(2, "0");
  return `s3://bucket/landing/2026/${month}/${String(1 + (day % 28)).padStart(2, "0")}/orders-${String(n).padStart(6, "0")}.json`;
}

function etagOf(n: number): string {
  return (BigInt(n) * 0x9e3779b97f4a7c15n).toString(16).padStart(32, "0").slice(-32);
}

/** One page of 1,000 files, through the paths a discovery pass and the workers take. */
async function fillPage(ingestionId: number, runId: number, page: number, me: string): Promise<void> {
  const listed = Array.from({ length: PAGE }, (_, i) => {
    const n = page * PAGE + i;
    return {
      uri: pathOf(n),
      size: 20_000 + (n % 50_000),
      etag: etagOf(n),
      modifiedAt: new Date(Date.UTC(2026, 11, 2, 0, 0, n % 86_400)),
    };
  });
  const { created } = await registerFiles(db, {
    ingestionId,
    runId,
    files: listed,
    modifiedPolicy: "ignore",
  });
  const size = new Map(listed.map((f) => [f.uri, f.size]));
  // Every 20th file fails once (a timeout reading it) and is handed back for a retry.
  const retried = created.filter((_, i) => i % RETRY_EVERY === 0);
  await claimFiles(db, { refs: retried, worker: me, leaseMs: 600_000 });
  await recordOutcomes(db, {
    worker: me,
    outcomes: retried.map((f) => ({
      ...f,
      status: "PENDING" as const,
      errorType: "READ_TIMEOUT",
      errorMessage: "reading the object timed out after 120000 ms; it is retried",
    })),
  });
  const claimed = await claimFiles(db, { refs: created, worker: me, leaseMs: 600_000 });
  for (let b = 0; b < claimed.length; b += batchFiles) {
    const members = claimed.slice(b, b + batchFiles);
    const batchId = randomUUID();
    const snapshotId = String(BigInt(page * 1_000 + b) * 7_919n + 4_611_686_018_427_387_904n);
    await openBatch(db, {
      batchId,
      ingestionId,
      table: "lake.sales.orders",
      worker: me,
      files: members,
      ingestedAtMicros: BigInt(Date.now()) * 1_000n,
    });
    const records = members.map((f) => ({ fileId: f.id, records: 100 + (f.id % 400) }));
    const decided = await beginPublish(db, {
      batchId,
      worker: me,
      stagedSnapshotId: snapshotId,
      records,
      publishLeaseMs: 60_000,
    });
    if (!decided) throw new Error(`batch ${batchId} was fenced off`);
    await recordOutcomes(db, {
      worker: me,
      outcomes: members.map((f, i) => ({
        id: f.id,
        version: f.version,
        status: "SUCCESS" as const,
        recordsIngested: records[i]!.records,
        bytesRead: size.get(f.path) ?? 0,
        snapshotId,
        batchId,
      })),
      batch: { id: batchId, state: "COMMITTED", snapshotId },
    });
  }
}

async function fill(ingestionId: number): Promise<number> {
  const started = performance.now();
  const pages = files / PAGE;
  let next = 0;
  let done = 0;
  const lane = async (laneNo: number): Promise<void> => {
    const me = worker(laneNo);
    for (;;) {
      const first = next;
      next += RUN_FILES / PAGE;
      if (first >= pages) return;
      const run = await startRun(db, { ingestionId, trigger: "schedule" });
      const last = Math.min(pages, first + RUN_FILES / PAGE);
      for (let page = first; page < last; page++) {
        await fillPage(ingestionId, run.id, page, me);
        done += 1;
        if (done % 50 === 0) {
          const rate = (done * PAGE) / ((performance.now() - started) / 1000);
          process.stderr.write(`  ${done * PAGE} files (${Math.round(rate)} files/s)\n`);
        }
      }
      const n = (last - first) * PAGE;
      await finishRun(db, run.id, { filesFound: n, filesNew: n, filesModified: 0 });
    }
  };
  await Promise.all(Array.from({ length: parallel }, (_, i) => lane(i)));
  return (performance.now() - started) / 1000;
}

interface RelationSize {
  table: string;
  relation: string;
  kind: "table" | "index";
  bytes: number;
  rows: number;
}

const TABLES = [
  "processed_files",
  "file_versions",
  "file_attempts",
  "write_batches",
  "write_batch_files",
  "runs",
  "run_refusals",
];

/** Every table's and index's size (a table's with its TOAST, without its indexes) and live rows. */
async function sizes(): Promise<RelationSize[]> {
  const { rows } = await db.pool.query<{
    table: string;
    relation: string;
    kind: "table" | "index";
    bytes: string;
    rows: string;
  }>(
    `SELECT c.relname AS table, c.relname AS relation, 'table' AS kind,
            (pg_total_relation_size(c.oid) - pg_indexes_size(c.oid))::text AS bytes,
            (SELECT n_live_tup FROM pg_stat_user_tables s WHERE s.relid = c.oid)::text AS rows
     FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace
     WHERE ns.nspname = $1 AND c.relname = ANY($2::text[])
     UNION ALL
     SELECT t.relname, i.relname, 'index', pg_relation_size(i.oid)::text, '0'
     FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
     JOIN pg_namespace ns ON ns.oid = t.relnamespace
     WHERE ns.nspname = $1 AND t.relname = ANY($2::text[])
     ORDER BY 1, 3 DESC, 2`,
    [schema, TABLES],
  );
  return rows.map((row) => ({ ...row, bytes: Number(row.bytes), rows: Number(row.rows) }));
}

async function rowCounts(): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const table of TABLES) {
    const { rows } = await db.pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`);
    counts[table] = Number(rows[0]?.n ?? 0);
  }
  return counts;
}

const mb = (bytes: number): string => `${(bytes / 1_048_576).toFixed(1)} MB`;
const perFile = (bytes: number): string => `${(bytes / files).toFixed(0)} B/file`;

function report(title: string, measured: RelationSize[], counts: Record<string, number>): number {
  const total = measured.reduce((sum, r) => sum + r.bytes, 0);
  console.log(
    `\n${title}: ${mb(total)}, ${perFile(total)} (seed's estimate ${SEED_BYTES_PER_FILE}, goal ≤ ${SEED_BYTES_PER_FILE / 2})`,
  );
  for (const table of TABLES) {
    const parts = measured.filter((r) => r.table === table);
    const sum = parts.reduce((s, r) => s + r.bytes, 0);
    const heap = parts.find((r) => r.kind === "table")?.bytes ?? 0;
    console.log(
      `  ${table.padEnd(18)} ${String(counts[table] ?? 0).padStart(9)} rows  ${mb(sum).padStart(10)}  ${perFile(sum).padStart(12)}  (heap ${perFile(heap)})`,
    );
    for (const index of parts.filter((r) => r.kind === "index")) {
      console.log(
        `      ${index.relation.padEnd(44)} ${mb(index.bytes).padStart(10)}  ${perFile(index.bytes).padStart(12)}`,
      );
    }
  }
  return total;
}

async function main(): Promise<void> {
  await migrate(db);
  const { ingestion } = await upsertIngestion(db, {
    name: "orders",
    sourceUri: "s3://bucket/landing/",
    format: "json",
    readerOptions: {},
    schemaDdl: null,
    glob: "**/*.json",
    targetTable: "lake.sales.orders",
    schedule: "*/5 * * * *",
    maxAttempts: 5,
    backoffMs: 1_000,
    modifiedPolicy: "ignore",
    listing: null,
    enabled: true,
  });
  console.log(
    `state-size: ${files} files, batches of ${batchFiles}, every ${RETRY_EVERY}th retried once, ${parallel} writers; schema ${schema}`,
  );
  const seconds = await fill(ingestion.id);
  console.log(
    `filled in ${seconds.toFixed(0)} s (${Math.round(files / seconds)} files/s through the real SQL paths)`,
  );

  await db.pool.query("ANALYZE");
  report(
    "as written (dead row versions included, before autovacuum reuses them)",
    await sizes(),
    await rowCounts(),
  );
  await db.pool.query("VACUUM FULL ANALYZE");
  const full = report("compacted (VACUUM FULL)", await sizes(), await rowCounts());

  const spark =
    archiveTable === undefined ? undefined : new SparkConnectClient({ remote: need("SPARK_REMOTE") });
  const pruner = new StatePruner({
    db,
    logger: createLogger({ name: "bench", level: "warn" }),
    retentionMs: 1,
    ...(spark && archiveTable ? { spark, archiveTable } : { archive: false }),
  });
  await new Promise((resolve) => setTimeout(resolve, 10));
  const pruned = await pruner.prune();
  const rows = Object.values(pruned.deleted).reduce((sum, n) => sum + n, 0);
  console.log(
    `\npruned everything settled in ${(pruned.ms / 1000).toFixed(1)} s (${Math.round(rows / (pruned.ms / 1000))} rows/s${
      archiveTable ? `, archived to ${archiveTable}` : ", not archived"
    }): ${Object.entries(pruned.deleted)
      .map(([table, n]) => `${table} ${n}`)
      .join(", ")}`,
  );
  if (spark && archiveTable) {
    const [files] = await spark.sql(
      `SELECT count(*) AS files, sum(file_size_in_bytes) AS bytes FROM ${archiveTable}.data_files`,
    );
    console.log(`archive: ${String(files?.files)} data files, ${mb(Number(files?.bytes ?? 0))} (Parquet)`);
    await spark.sqlCommand(`DROP TABLE IF EXISTS ${archiveTable} PURGE`);
    await spark.close();
  }
  await db.pool.query("ANALYZE");
  const plain = (await sizes()).reduce((sum, r) => sum + r.bytes, 0);
  console.log(
    `after the prune, before VACUUM FULL: ${mb(plain)} (deleted rows' space is reused by new rows, not returned)`,
  );
  await db.pool.query("VACUUM FULL ANALYZE");
  const after = report("after the prune, compacted (VACUUM FULL)", await sizes(), await rowCounts());
  console.log(
    `\nper file: ${(full / files).toFixed(0)} B before the prune, ${(after / files).toFixed(0)} B after; seed ${SEED_BYTES_PER_FILE} B, goal ≤ ${SEED_BYTES_PER_FILE / 2} B`,
  );
}

try {
  await main();
} finally {
  await db.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => {});
  await db.close();
}
