/**
 * Memory of the two processes that hold a big backlog, measured on real processes against the real services:
 *   (w) one `lakeferry worker` (default concurrency 1000, batches up to 1000 files) working through a backlog
 *       of `--files` small JSON-lines files already registered and enqueued by `lakeferry discover`: its RSS
 *       every 250 ms, at 10/50/90 % of the files settled, its peak (VmHWM), files/s and its CPU per file;
 *       PASS when the peak stays under `--limit-mb`; the rows in the table are counted at the end;
 *   (d) one `lakeferry discover` pass over a local folder of `--keys` empty files (1,000 per subfolder): the
 *       process's RSS at every 10 % of the keys registered, its peak, and whether it is flat (the highest
 *       RSS after 20 % of the keys within `--flat-margin` of the highest before, plus the trend after 20 %);
 *       Redis's used_memory along the pass (the queue holds one job per key) and one job's footprint.
 * Progress is counted in Postgres (`processed_files`). Each part runs in a Postgres schema, BullMQ prefix,
 * folder and Iceberg table of its own, removed afterwards (left for inspection when the part fails).
 *
 *   npm run bench:memory -- [--files 100000] [--keys 1000000] [--only worker,discoverer]
 *                          [--cap-minutes 10] [--limit-mb 300] [--flat-margin 0.2] [--heap-snapshots DIR]
 *                          [--from-source] [--node-flags "--max-old-space-size=… …"]
 *
 * The processes are started as the image starts them, `node apps/cli/bin/lakeferry.js …` (the launcher runs the
 * CLI in its own process: the pid measured is the node process doing the work); `--from-source` makes the
 * launcher run the TypeScript sources through tsx even when an up-to-date build exists.
 * `--node-flags` passes node options to the measured processes (a heap cap, say).
 * `--heap-snapshots DIR` starts the measured processes with `--heapsnapshot-signal=SIGUSR2` and asks each for
 * a V8 heap snapshot (into DIR) at 20 % and 90 % of its work; taking one pauses the process for a few seconds.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, createWriteStream, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm, statfs } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { createDatabase, type Database } from "@lakeferry/db";
import { SparkConnectClient } from "@lakeferry/spark-connect";
import { need } from "./service-env.ts";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
/** The `lakeferry` launcher a user or the image runs: the CLI in this very process (no wrapper to measure). */
const LAUNCHER = join(ROOT, "apps/cli/bin/lakeferry.js");
const SAMPLE_MS = 250;
/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const CLOCK_TICKS = 100;
/** Files (or keys) per subfolder of a landing folder. */
const PER_FOLDER = 1_000;

interface Options {
  files: number;
  keys: number;
  only: Set<string>;
  capMinutes: number;
  limitMb: number;
  flatMargin: number;
  heapSnapshots: string | undefined;
  fromSource: boolean;
  nodeFlags: string[];
}

function parseOptions(argv: string[]): Options {
  const options: Options = {
    files: 100_000,
    keys: 1_000_000,
    only: new Set(["worker", "discoverer"]),
    capMinutes: 10,
    limitMb: 300,
    flatMargin: 0.2,
    heapSnapshots: undefined,
    fromSource: false,
    nodeFlags: [],
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === "--from-source") {
      options.fromSource = true;
      i -= 1;
      continue;
    }
    if (value === undefined) throw new Error(`${flag} needs a value`);
    const number = (): number => {
      const n = Number(value);
      if (!(n > 0)) throw new Error(`${flag} must be a positive number, got ${value}`);
      return n;
    };
    if (flag === "--files") options.files = Math.round(number());
    else if (flag === "--keys") options.keys = Math.round(number());
    else if (flag === "--only") {
      options.only = new Set(value.split(","));
      const unknown = [...options.only].filter((part) => part !== "worker" && part !== "discoverer");
      if (unknown.length > 0)
        throw new Error(`--only takes worker and/or discoverer, got ${unknown.join(",")}`);
    } else if (flag === "--cap-minutes") options.capMinutes = number();
    else if (flag === "--limit-mb") options.limitMb = number();
    else if (flag === "--flat-margin") options.flatMargin = number();
    else if (flag === "--heap-snapshots") options.heapSnapshots = resolve(value);
    else if (flag === "--node-flags") options.nodeFlags = value.split(" ").filter((part) => part !== "");
    else throw new Error(`unknown option ${flag}`);
  }
  return options;
}

const options = parseOptions(process.argv.slice(2));
const databaseUrl = need("DATABASE_URL");
const redisUrl = need("REDIS_URL");
const sparkRemote = need("SPARK_REMOTE");
const redis = new Redis(redisUrl);

const mb = (kb: number): string => `${(kb / 1024).toFixed(0)} MB`;
const count = (n: number): string => n.toLocaleString("en-US");
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- measuring

/** VmRSS and VmHWM (peak RSS) of a live process, in kB; undefined once it is gone. */
function processMemory(pid: number): { rssKb: number; hwmKb: number } | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  const rssKb = field("VmRSS");
  const hwmKb = field("VmHWM");
  return Number.isFinite(rssKb) ? { rssKb, hwmKb } : undefined;
}

/** CPU seconds (user + system) a live process has used; undefined once it is gone. */
function processCpuSeconds(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/** Redis's `used_memory` (INFO memory), in bytes: the whole server, shared with whatever else runs. */
async function redisUsedMemory(): Promise<number> {
  const info = await redis.info("memory");
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? Number.NaN);
}

/** What one waiting ingest job holds in Redis: its hash's MEMORY USAGE and its fields' sizes. */
async function jobFootprint(prefix: string): Promise<string> {
  const id = await redis.lindex(`${prefix}:lakeferry-ingest:wait`, 0);
  if (id === null) return "no job waiting";
  const key = `${prefix}:lakeferry-ingest:${id}`;
  const [bytes, fields] = await Promise.all([redis.memory("USAGE", key), redis.hgetall(key)]);
  const sizes = Object.entries(fields).map(([name, value]) => `${name} ${value.length}`);
  return `hash ${bytes} B (${sizes.join(", ")} characters), key ${key.length} characters`;
}

/** Least-squares slope of RSS over work done, in MB per unit of work (file or key). */
function slopeMbPerUnit(samples: Sample[]): number {
  if (samples.length < 2) return 0;
  const n = samples.length;
  const meanX = samples.reduce((sum, s) => sum + s.done, 0) / n;
  const meanY = samples.reduce((sum, s) => sum + s.rssKb, 0) / n;
  let num = 0;
  let den = 0;
  for (const s of samples) {
    num += (s.done - meanX) * (s.rssKb - meanY);
    den += (s.done - meanX) ** 2;
  }
  return den === 0 ? 0 : num / den / 1024;
}

interface Sample {
  ms: number;
  rssKb: number;
  hwmKb: number;
  /** CPU seconds (user + system) the process had used. */
  cpuSeconds: number;
  /** Work done (files settled, keys registered) when the sample was taken. */
  done: number;
}

/**
 * Samples a process's memory every 250 ms from /proc (the node process itself: the bench spawns node, not a
 * wrapper), tagging each sample with the progress last reported through `progress`.
 */
class MemorySampler {
  readonly samples: Sample[] = [];
  readonly #pid: number;
  readonly #started = performance.now();
  readonly #timer: NodeJS.Timeout;
  #done = 0;

  constructor(pid: number) {
    this.#pid = pid;
    this.#timer = setInterval(() => this.sample(), SAMPLE_MS);
    this.sample();
  }

  progress(done: number): void {
    this.#done = done;
  }

  /** Takes one sample now; undefined when the process is gone. */
  sample(): Sample | undefined {
    const memory = processMemory(this.#pid);
    if (!memory) return undefined;
    const cpuSeconds = processCpuSeconds(this.#pid) ?? Number.NaN;
    const sample = { ms: performance.now() - this.#started, ...memory, cpuSeconds, done: this.#done };
    this.samples.push(sample);
    return sample;
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** The first sample taken with at least `done` work done. */
  at(done: number): Sample | undefined {
    return this.samples.find((sample) => sample.done >= done);
  }

  /** The highest VmHWM seen: the process's peak RSS. */
  get peakKb(): number {
    return Math.max(0, ...this.samples.map((sample) => sample.hwmKb));
  }
}

// ---------------------------------------------------------------- processes and sandboxes

interface Sandbox {
  id: string;
  name: string;
  schema: string;
  prefix: string;
  table: string;
  dir: string;
  source: string;
  env: Record<string, string>;
  db: Database;
}

async function createSandbox(label: string): Promise<Sandbox> {
  const id = randomBytes(4).toString("hex");
  const dir = await mkdtemp(join(tmpdir(), `lakeferry-mem-${label}-`));
  const source = join(dir, "source");
  mkdirSync(source);
  const schema = `bench_mem_${label}_${id}`;
  return {
    id,
    name: `mem-${label}-${id}`,
    schema,
    prefix: `bench-mem-${label}-${id}`,
    table: `lake.bench_mem_${id}.t`,
    dir,
    source,
    env: {
      ...(process.env as Record<string, string>),
      LAKEFERRY_DB_SCHEMA: schema,
      LAKEFERRY_QUEUE_PREFIX: `bench-mem-${label}-${id}`,
      LAKEFERRY_LOG_LEVEL: "info",
      ...(options.fromSource ? { LAKEFERRY_FROM_SOURCE: "1" } : {}),
    },
    db: createDatabase({ connectionString: databaseUrl, schema, maxConnections: 2 }),
  };
}

/** Removes the sandbox's schema, queue keys (SCAN + UNLINK: there may be a million), folder and table. */
async function removeSandbox(box: Sandbox, table: boolean): Promise<void> {
  await box.db.pool.query(`DROP SCHEMA IF EXISTS "${box.schema}" CASCADE`).catch((error: unknown) => {
    console.error(`could not drop schema ${box.schema}: ${String(error)}`);
  });
  await box.db.close();
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${box.prefix}:*`, "COUNT", 5_000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== "0");
  await rm(box.dir, { recursive: true, force: true });
  if (table) {
    const spark = new SparkConnectClient({ remote: sparkRemote });
    try {
      await spark.sqlCommand(`DROP TABLE IF EXISTS ${box.table} PURGE`);
      await spark.sqlCommand(`DROP NAMESPACE IF EXISTS ${box.table.split(".").slice(0, 2).join(".")}`);
    } catch (error) {
      console.error(`could not drop ${box.table}: ${String(error)}`);
    } finally {
      await spark.close();
    }
  }
}

/** What the launcher runs (the build when it is up to date, else the sources through tsx), as it says at debug level. */
function launcherRuns(): string {
  const result = spawnSync(process.execPath, [LAUNCHER, "help"], {
    cwd: ROOT,
    env: {
      ...process.env,
      LAKEFERRY_LOG_LEVEL: "debug",
      ...(options.fromSource ? { LAKEFERRY_FROM_SOURCE: "1" } : {}),
    },
    encoding: "utf8",
  });
  const line = result.stderr.split("\n").find((text) => text.includes('"name":"launcher"'));
  if (!line) return "the TypeScript sources through tsx";
  const said = JSON.parse(line) as { msg: string; reason?: string };
  return `${said.msg}${said.reason ? ` (${said.reason})` : ""}`;
}

/** Node flags of the measured processes: `--node-flags`, and a heap-snapshot signal when asked for. */
function nodeFlags(): string[] {
  return [
    ...options.nodeFlags,
    ...(options.heapSnapshots
      ? [`--heapsnapshot-signal=SIGUSR2`, `--diagnostic-dir=${options.heapSnapshots}`]
      : []),
  ];
}

/** `lakeferry ARGS…` as a child node process (its pid is the node process measured); output to a log. */
function spawnLakeferry(box: Sandbox, args: string[], logName: string, flags: string[] = []): ChildProcess {
  const log = createWriteStream(join(box.dir, `${logName}.log`));
  const child = spawn(process.execPath, [...flags, LAUNCHER, ...args], {
    cwd: ROOT,
    env: box.env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  return child;
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolvePromise) => child.once("exit", (code) => resolvePromise(code)));
}

/** Runs `lakeferry ARGS…` to the end; throws with its log when it fails. */
async function lakeferry(box: Sandbox, args: string[]): Promise<void> {
  const child = spawnLakeferry(box, args, args[0] ?? "cli");
  const code = await exited(child);
  if (code !== 0) {
    const log = readFileSync(join(box.dir, `${args[0] ?? "cli"}.log`), "utf8");
    throw new Error(`lakeferry ${args.join(" ")} exited ${code}: ${log.slice(-3000)}`);
  }
}

async function applyIngestion(box: Sandbox, pattern: string, schema?: string): Promise<void> {
  await lakeferry(box, ["migrate"]);
  const spec = join(box.dir, "ingestion.yaml");
  writeFileSync(
    spec,
    [
      `name: ${box.name}`,
      `source: ${JSON.stringify(`file://${box.source}/`)}`,
      "format: json",
      ...(schema ? [`schema: ${JSON.stringify(schema)}`] : []),
      `pattern: ${JSON.stringify(pattern)}`,
      `table: ${box.table}`,
      "retry: { attempts: 3, backoffMs: 500 }",
      // Files are written whole before the pass: no wait (the local default is 5 s).
      "listing: { minAgeMs: 0 }",
      "",
    ].join("\n"),
  );
  await lakeferry(box, ["ingestion", "apply", "-f", spec]);
}

/** Asks a process started with `--heapsnapshot-signal=SIGUSR2` for a heap snapshot, once per label. */
function snapshotOnce(child: ChildProcess, taken: Set<string>, label: string): void {
  if (!options.heapSnapshots || taken.has(label) || child.exitCode !== null) return;
  taken.add(label);
  child.kill("SIGUSR2");
  console.error(`  heap snapshot of pid ${child.pid} asked for at ${label} (into ${options.heapSnapshots})`);
}

/** Free inodes and bytes of the filesystem holding `dir`. */
async function freeSpace(dir: string): Promise<{ inodes: number; bytes: number }> {
  const stats = await statfs(dir);
  return { inodes: stats.ffree, bytes: stats.bavail * stats.bsize };
}

// ---------------------------------------------------------------- (w) the worker

const WORKER_SCHEMA = "id BIGINT, file INT, amount DOUBLE";

/** `files` JSON-lines files of (i % 3) + 1 rows in subfolders of 1,000; the total of rows. */
function writeSmallFiles(source: string, files: number): number {
  let rows = 0;
  for (let i = 0; i < files; i++) {
    const folder = join(source, `d-${String(Math.floor(i / PER_FOLDER)).padStart(4, "0")}`);
    if (i % PER_FOLDER === 0) mkdirSync(folder);
    const lines: string[] = [];
    for (let j = 0; j <= i % 3; j++)
      lines.push(JSON.stringify({ id: i * 10 + j, file: i, amount: i + j / 10 }));
    writeFileSync(join(folder, `f-${String(i).padStart(7, "0")}.json`), `${lines.join("\n")}\n`);
    rows += lines.length;
  }
  return rows;
}

async function settledCounts(box: Sandbox): Promise<{ settled: number; failed: number }> {
  const { rows } = await box.db.pool.query<{ settled: number; failed: number }>(
    `SELECT count(*) FILTER (WHERE status IN ('SUCCESS', 'FAILED', 'SKIPPED'))::int AS settled,
            count(*) FILTER (WHERE status = 'FAILED')::int AS failed
       FROM processed_files`,
  );
  return rows[0] ?? { settled: 0, failed: 0 };
}

async function benchWorker(): Promise<void> {
  const files = options.files;
  const capMs = options.capMinutes * 60_000;
  console.log(`\n(w) one lakeferry worker, backlog of ${count(files)} small JSON files`);
  const free = await freeSpace(tmpdir());
  if (free.inodes < files * 1.1 + 10_000 || free.bytes < files * 8_192) {
    throw new Error(`${tmpdir()} has ${count(free.inodes)} free inodes and ${free.bytes} bytes: too few`);
  }
  const box = await createSandbox("w");
  let worker: ChildProcess | undefined;
  let finished = false;
  try {
    let started = performance.now();
    const rows = writeSmallFiles(box.source, files);
    console.log(
      `  wrote ${count(files)} files (${count(rows)} rows) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    await applyIngestion(box, "**/*.json", WORKER_SCHEMA);
    const redisBefore = await redisUsedMemory();

    started = performance.now();
    const discover = spawnLakeferry(box, ["discover", box.name], "discover");
    const discoverSampler = new MemorySampler(discover.pid ?? -1);
    const discoverCode = await exited(discover);
    discoverSampler.stop();
    if (discoverCode !== 0) throw new Error(`lakeferry discover exited ${discoverCode} (see ${box.dir})`);
    const registered = Number(
      (await box.db.pool.query<{ n: string }>("SELECT count(*) AS n FROM processed_files")).rows[0]?.n,
    );
    if (registered !== files) throw new Error(`discovery registered ${registered} of ${files} files`);
    const redisBacklog = await redisUsedMemory();
    console.log(
      `  lakeferry discover: ${count(files)} files registered and enqueued in ` +
        `${((performance.now() - started) / 1000).toFixed(1)} s, peak RSS ${mb(discoverSampler.peakKb)}`,
    );
    console.log(
      `  Redis used_memory: ${mb(redisBefore / 1024)} before, ${mb(redisBacklog / 1024)} with the backlog ` +
        `(${((redisBacklog - redisBefore) / files).toFixed(0)} B per job); one job: ${await jobFootprint(box.prefix)}`,
    );

    worker = spawnLakeferry(box, ["worker"], "worker", nodeFlags());
    const workerStarted = performance.now();
    const sampler = new MemorySampler(worker.pid ?? -1);
    const snapshots = new Set<string>();
    let settled = { settled: 0, failed: 0 };
    let firstSettledAt: number | undefined;
    let lastAt = 0;
    const deadline = workerStarted + capMs;
    while (performance.now() < deadline && worker.exitCode === null) {
      settled = await settledCounts(box);
      sampler.progress(settled.settled);
      if (firstSettledAt === undefined && settled.settled > 0) firstSettledAt = performance.now();
      if (settled.settled >= files * 0.2) snapshotOnce(worker, snapshots, "20%");
      if (settled.settled >= files * 0.9) snapshotOnce(worker, snapshots, "90%");
      lastAt = performance.now();
      if (settled.settled >= files) break;
      await sleep(500);
    }
    const last = sampler.sample();
    const cpuSeconds = last?.cpuSeconds ?? Number.NaN;
    sampler.stop();
    if (worker.exitCode !== null) throw new Error(`the worker exited ${worker.exitCode} (see ${box.dir})`);
    const drained = settled.settled >= files;
    // From the first file seen settled to the last; a backlog settled in one go is timed from the spawn.
    const firstAt = firstSettledAt ?? workerStarted;
    const fromFirst = lastAt - firstAt >= 10_000;
    const seconds = (lastAt - (fromFirst ? firstAt : workerStarted)) / 1000;
    const peakKb = Math.max(sampler.peakKb, last?.hwmKb ?? 0);
    const pass = peakKb <= options.limitMb * 1024;

    console.log(
      `  worker: ${count(settled.settled)} of ${count(files)} files settled (${count(settled.failed)} FAILED) in ` +
        `${((lastAt - workerStarted) / 1000).toFixed(0)} s from start${drained ? "" : ` — stopped at the ${options.capMinutes} min cap`}`,
    );
    console.log(
      `  rate: ${(settled.settled / seconds).toFixed(0)} files/s (${fromFirst ? "first file settled to last" : "from the spawn"}, ${seconds.toFixed(0)} s); ` +
        `worker CPU ${cpuSeconds.toFixed(0)} s with its start, ${((cpuSeconds * 1000) / Math.max(1, settled.settled)).toFixed(2)} ms per file`,
    );
    for (const share of [0.1, 0.5, 0.9]) {
      const sample = sampler.at(files * share);
      console.log(
        `  RSS after ${String(share * 100).padStart(2)} % of the files: ${sample ? mb(sample.rssKb) : "not reached"}`,
      );
    }
    const working = sampler.samples.filter((sample) => sample.done > 0);
    console.log(
      `  RSS at the end: ${last ? mb(last.rssKb) : "?"}; trend while working: ` +
        `${(slopeMbPerUnit(working) * 10_000).toFixed(1)} MB per 10,000 files`,
    );
    console.log(
      `  peak RSS (VmHWM): ${mb(peakKb)} — ${pass ? "PASS" : "MISS"} against ${options.limitMb} MB` +
        `${drained ? "" : " (backlog not drained)"}`,
    );
    if (drained) {
      const spark = new SparkConnectClient({ remote: sparkRemote });
      try {
        const [row] = await spark.sql(`SELECT count(*) AS n FROM ${box.table}`);
        const landed = Number(row?.n ?? 0);
        console.log(
          `  rows in the table: ${count(landed)} of ${count(rows)}${landed === rows ? " (exact)" : ""}`,
        );
      } finally {
        await spark.close();
      }
    }
    finished = true;
  } finally {
    if (worker && worker.exitCode === null) {
      worker.kill("SIGTERM");
      const timer = setTimeout(() => worker?.kill("SIGKILL"), 30_000);
      await exited(worker);
      clearTimeout(timer);
    }
    if (finished) {
      await removeSandbox(box, true);
    } else {
      await box.db.close();
      console.error(`  left for inspection: ${box.dir}, schema ${box.schema}, prefix ${box.prefix}`);
    }
  }
}

// ---------------------------------------------------------------- (d) the discoverer

/** `keys` empty files in subfolders of 1,000 (empty files take an inode each and no data block). */
function writeEmptyFiles(source: string, keys: number): void {
  for (let i = 0; i < keys; i++) {
    const folder = join(source, `d-${String(Math.floor(i / PER_FOLDER)).padStart(4, "0")}`);
    if (i % PER_FOLDER === 0) mkdirSync(folder);
    closeSync(openSync(join(folder, `k-${String(i).padStart(7, "0")}.json`), "w"));
  }
}

async function benchDiscoverer(): Promise<void> {
  const keys = options.keys;
  console.log(`\n(d) one lakeferry discover pass over ${count(keys)} keys (a local folder)`);
  const free = await freeSpace(tmpdir());
  if (free.inodes < keys * 1.1 + 10_000) {
    throw new Error(`${tmpdir()} has ${count(free.inodes)} free inodes, too few for ${count(keys)} files`);
  }
  const box = await createSandbox("d");
  let discover: ChildProcess | undefined;
  let finished = false;
  try {
    let started = performance.now();
    writeEmptyFiles(box.source, keys);
    console.log(
      `  created ${count(keys)} empty files in ${Math.ceil(keys / PER_FOLDER)} folders in ` +
        `${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    await applyIngestion(box, "**/*.json");
    const redisBefore = await redisUsedMemory();
    const redisAt: { done: number; bytes: number }[] = [];

    started = performance.now();
    discover = spawnLakeferry(box, ["discover", box.name], "discover", nodeFlags());
    const sampler = new MemorySampler(discover.pid ?? -1);
    const snapshots = new Set<string>();
    let lastRedisAt = 0;
    while (discover.exitCode === null) {
      // Ids come from a sequence in this fresh schema and nothing conflicts: the highest is the count.
      const { rows } = await box.db.pool.query<{ n: string }>(
        "SELECT coalesce(max(id), 0) AS n FROM processed_files",
      );
      const done = Number(rows[0]?.n ?? 0);
      sampler.progress(done);
      if (done >= keys * 0.2) snapshotOnce(discover, snapshots, "20%");
      if (done >= keys * 0.9) snapshotOnce(discover, snapshots, "90%");
      if (performance.now() - lastRedisAt >= 1_000) {
        redisAt.push({ done, bytes: await redisUsedMemory() });
        lastRedisAt = performance.now();
      }
      await sleep(SAMPLE_MS);
    }
    sampler.stop();
    const code = await exited(discover);
    const seconds = (performance.now() - started) / 1000;
    if (code !== 0) throw new Error(`lakeferry discover exited ${code} (see ${box.dir})`);
    const registered = Number(
      (await box.db.pool.query<{ n: string }>("SELECT count(*) AS n FROM processed_files")).rows[0]?.n,
    );
    if (registered !== keys) throw new Error(`discovery registered ${registered} of ${keys} keys`);
    const redisAfter = await redisUsedMemory();
    const waiting = await redis.llen(`${box.prefix}:lakeferry-ingest:wait`);
    const job = await jobFootprint(box.prefix);

    console.log(
      `  ${count(keys)} keys listed, registered and enqueued in ${seconds.toFixed(0)} s ` +
        `(${(keys / seconds).toFixed(0)} keys/s); ${count(waiting)} jobs waiting; ` +
        `discover CPU about ${(sampler.samples.at(-1)?.cpuSeconds ?? Number.NaN).toFixed(0)} s`,
    );
    console.log("  keys registered   RSS      Redis used_memory");
    for (let tenth = 1; tenth <= 10; tenth++) {
      const done = (keys * tenth) / 10;
      // The pass may end between two polls of the count: its last sample stands for 100 %.
      const sample = sampler.at(done) ?? (tenth === 10 ? sampler.samples.at(-1) : undefined);
      const redisSample = redisAt.find((entry) => entry.done >= done);
      console.log(
        `  ${`${tenth * 10} %`.padStart(6)} ${count(done).padStart(10)}   ${(sample ? mb(sample.rssKb) : "-").padEnd(8)} ` +
          `${redisSample ? mb(redisSample.bytes / 1024) : "-"}`,
      );
    }
    // RSS saw-tooths with V8's collections, so a single sample is no reference: the envelope is. Flat: the
    // highest RSS after 20 % of the keys stays within the margin of the highest before; the slope says
    // whether anything grows with the keys.
    const at20 = sampler.at(keys * 0.2);
    const before = sampler.samples.filter((s) => at20 && s.ms < at20.ms);
    const after = sampler.samples.filter((s) => at20 && s.ms >= at20.ms);
    const beforeKb = Math.max(0, ...before.map((s) => s.rssKb));
    const afterKb = Math.max(0, ...after.map((s) => s.rssKb));
    const flat = at20 !== undefined && afterKb <= beforeKb * (1 + options.flatMargin);
    console.log(`  peak RSS (VmHWM): ${mb(sampler.peakKb)}`);
    console.log(
      `  flat: ${flat ? "YES" : "NO"} — highest RSS after 20 % of the keys ${mb(afterKb)}, before ${mb(beforeKb)} ` +
        `(margin ${(options.flatMargin * 100).toFixed(0)} %); trend after 20 %: ` +
        `${(slopeMbPerUnit(after) * 100_000).toFixed(1)} MB per 100,000 keys`,
    );
    console.log(
      `  Redis used_memory: ${mb(redisBefore / 1024)} before, ${mb(redisAfter / 1024)} after ` +
        `(${((redisAfter - redisBefore) / keys).toFixed(0)} B per job, the whole server)`,
    );
    console.log(`  one job: ${job}`);
    finished = true;
  } finally {
    if (discover && discover.exitCode === null) discover.kill("SIGKILL");
    if (finished) {
      const cleanup = performance.now();
      await removeSandbox(box, false);
      console.log(`  cleaned up in ${((performance.now() - cleanup) / 1000).toFixed(0)} s`);
    } else {
      await box.db.close();
      console.error(`  left for inspection: ${box.dir}, schema ${box.schema}, prefix ${box.prefix}`);
    }
  }
}

// ---------------------------------------------------------------- the run

if (options.heapSnapshots) mkdirSync(options.heapSnapshots, { recursive: true });
console.log(
  `node ${process.version}; apps/cli/bin/lakeferry.js: ${launcherRuns()}; ` +
    `samples every ${SAMPLE_MS} ms from /proc/<pid>/status`,
);
try {
  if (options.only.has("worker")) await benchWorker();
  if (options.only.has("discoverer")) await benchDiscoverer();
} finally {
  await redis.quit();
}
