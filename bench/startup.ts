/**
 * How fast each `lakeferry` command starts (issue 9: every command and process within 0.3 s), from the
 * built bundle and from the TypeScript sources through tsx (LAKEFERRY_FROM_SOURCE=1), side by side.
 * Runs `npm run build` first. Times, as the median and max of N runs, from spawn to exit: `--help`,
 * `status NAME`, `migrate` (up to date: the run the image does at every deploy); and for `worker` and
 * `discoverer`, from spawn to their "ready" log line, split at their "starting" line into loading (modules,
 * settings) and connecting (Postgres, Redis, and Spark for the worker). Everything runs in a Postgres
 * schema and BullMQ prefix of its own, dropped at the end. Bundled and tsx runs alternate, and the build
 * is made again when a source changes meanwhile (else the launcher would run tsx in the bundled column).
 * PASS/MISS is the bundled median wall time against 0.3 s. On a shared machine wall times mostly measure
 * the queue for a CPU: `node -e 0` and the load average say how busy it was, and the CPU seconds of each
 * run (GNU time for the commands that exit, /proc at the ready line for the processes; "-" where neither
 * exists) say what the command itself costs.
 *
 *   npm run bench:startup -- [runs=7]
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { createDatabase } from "@lakeferry/db";

const runs = Number(process.argv[2] ?? 7);
const GOAL_MS = 300;
const databaseUrl = process.env.DATABASE_URL;
const redisUrl = process.env.REDIS_URL;
if (!databaseUrl || !redisUrl || !process.env.SPARK_REMOTE) {
  throw new Error(
    'DATABASE_URL, REDIS_URL and SPARK_REMOTE must be set; run: eval "$(bash scripts/services.sh env)"',
  );
}

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const BIN = join(ROOT, "apps/cli/bin/lakeferry.js");
const DIST = join(ROOT, "apps/cli/dist");
const id = randomBytes(4).toString("hex");
const schema = `bench_startup_${id}`;
const prefix = `bench-startup-${id}`;
const name = `startup-${id}`;
const dir = await mkdtemp(join(tmpdir(), "lakeferry-bench-startup-"));
const baseEnv: Record<string, string | undefined> = {
  ...process.env,
  LAKEFERRY_DB_SCHEMA: schema,
  LAKEFERRY_QUEUE_PREFIX: prefix,
  LAKEFERRY_LOG_LEVEL: "info",
  LAKEFERRY_FROM_SOURCE: undefined,
};

type Mode = "bundled" | "tsx";
const MODES: readonly Mode[] = ["bundled", "tsx"];
const envOf = (mode: Mode): Record<string, string | undefined> =>
  mode === "tsx" ? { ...baseEnv, LAKEFERRY_FROM_SOURCE: "1" } : baseEnv;

let rebuilds = 0;

/** `npm run build`; its time in ms. */
async function build(): Promise<number> {
  const started = performance.now();
  await promisify(execFile)(process.execPath, [join(ROOT, "scripts/build.js")], { cwd: ROOT });
  return performance.now() - started;
}

/**
 * Builds again when a source changed since the build (people edit this repository while the bench runs),
 * as the launcher would otherwise run the sources through tsx and the "bundled" column would not be.
 */
async function keepBuildFresh(): Promise<void> {
  const manifest = JSON.parse(readFileSync(join(DIST, "manifest.json"), "utf8")) as {
    sources: Record<string, number>;
  };
  const stale = Object.entries(manifest.sources).some(
    ([file, mtimeMs]) => statSync(join(DIST, file), { throwIfNoEntry: false })?.mtimeMs !== mtimeMs,
  );
  if (stale) {
    rebuilds++;
    await build();
  }
}

/** GNU time, when installed, reports the CPU seconds of each run (less sensitive to a busy machine). */
const GNU_TIME = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined;
const CPU_MARK = "lakeferry-bench-cpu";

interface Sample {
  /** Milliseconds of wall time. */
  wall: number;
  /** Milliseconds of CPU time (user + system), when it could be measured. */
  cpu: number | undefined;
}

/** Wall (spawn to exit) and CPU time of `argv`; throws when it exits non-zero. */
function timeToExit(argv: string[], env: Record<string, string | undefined>): Promise<Sample> {
  return new Promise((resolvePromise, reject) => {
    const command = GNU_TIME ? [GNU_TIME, "-f", `${CPU_MARK} %U %S`, ...argv] : argv;
    const started = performance.now();
    const child = spawn(command[0]!, command.slice(1), {
      cwd: ROOT,
      env,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => {
      const wall = performance.now() - started;
      const cpu = new RegExp(`${CPU_MARK} ([\\d.]+) ([\\d.]+)`).exec(stderr);
      if (code === 0)
        resolvePromise({ wall, cpu: cpu ? (Number(cpu[1]) + Number(cpu[2])) * 1000 : undefined });
      else reject(new Error(`${argv.slice(1).join(" ")} exited ${code}: ${stderr}`));
    });
  });
}

/** CPU milliseconds (user + system) a live process has used so far, from /proc (Linux), else undefined. */
function cpuSoFar(pid: number | undefined): number | undefined {
  try {
    // Fields after the command name (which is in parentheses): utime and stime are the 12th and 13th.
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}
/** USER_HZ: what /proc counts CPU time in, 100 on every common Linux. */
const CLOCK_TICKS = 100;

interface ProcessStart {
  /** Spawn to the "ready" line. */
  ready: number;
  /** CPU time used up to the ready line. */
  cpu: number | undefined;
  /** Spawn to the "starting" line: node, modules, settings. */
  loading: number;
  /** "starting" to "ready": connecting to the services and starting the runtime. */
  connecting: number;
}

/**
 * Starts `lakeferry <command>`, waits for its ready line (log times are epoch ms, so they are compared with
 * the spawn's epoch time), then SIGTERM and waits for a clean exit.
 */
function timeToReady(command: "worker" | "discoverer", mode: Mode): Promise<ProcessStart> {
  return new Promise((resolvePromise, reject) => {
    const spawnedAt = Date.now();
    const child = spawn(process.execPath, [BIN, command], {
      cwd: ROOT,
      env: envOf(mode),
      stdio: ["ignore", "ignore", "pipe"],
    });
    let buffered = "";
    let output = "";
    let startingAt: number | undefined;
    let result: ProcessStart | undefined;
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      output += chunk;
      buffered += chunk;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        let entry: { msg?: string; time?: number };
        try {
          entry = JSON.parse(line) as typeof entry;
        } catch {
          continue;
        }
        if (entry.msg === `starting ${command}`) startingAt = entry.time;
        if (entry.msg === `${command} ready` && result === undefined && entry.time !== undefined) {
          const loading = (startingAt ?? entry.time) - spawnedAt;
          const ready = entry.time - spawnedAt;
          result = { ready, cpu: cpuSoFar(child.pid), loading, connecting: ready - loading };
          child.kill("SIGTERM");
        }
      }
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (result !== undefined && code === 0) resolvePromise(result);
      else
        reject(new Error(`lakeferry ${command} exited ${code ?? signal} before or after ready: ${output}`));
    });
  });
}

interface Figures {
  median: number;
  max: number;
}

function figures(samples: number[]): Figures {
  const sorted = [...samples].sort((a, b) => a - b);
  return { median: sorted[Math.floor((sorted.length - 1) / 2)]!, max: sorted.at(-1)! };
}

/** Median CPU time, when every run could measure it. */
function cpuMedian(samples: (number | undefined)[]): number | undefined {
  return samples.every((cpu) => cpu !== undefined) ? figures(samples).median : undefined;
}

const seconds = (ms: number | undefined): string => (ms === undefined ? "-" : (ms / 1000).toFixed(2));
const pair = (f: Figures): string => `${seconds(f.median)} / ${seconds(f.max)}`;

interface Row {
  label: string;
  wall: Record<Mode, Figures>;
  cpu: Record<Mode, number | undefined>;
  /** Worker and discoverer: median loading and connecting times. */
  split?: Record<Mode, string>;
}

async function main(): Promise<void> {
  const buildMs = await build();

  // The scratch schema, with one ingestion for `status` (no schedule: the discoverer fires nothing).
  await timeToExit([process.execPath, BIN, "migrate"], baseEnv);
  const yaml = join(dir, "ingestion.yaml");
  await writeFile(
    yaml,
    `name: ${name}\nsource: "file://${dir}/source/"\nformat: json\ntable: lake.bench_startup_${id}.t\n`,
  );
  await timeToExit([process.execPath, BIN, "ingestion", "apply", "-f", yaml], baseEnv);

  const nodeSamples: Sample[] = [];
  for (let i = 0; i < runs; i++) nodeSamples.push(await timeToExit([process.execPath, "-e", "0"], baseEnv));
  const rows: Row[] = [];
  const report = (row: Row): void => {
    rows.push(row);
    process.stderr.write(`${row.label}: ${pair(row.wall.bundled)} s bundled, ${pair(row.wall.tsx)} s tsx\n`);
  };
  // Bundled and tsx runs alternate, so that a change in the machine's load touches both columns alike.
  const exits: [string, string[]][] = [
    ["lakeferry --help", ["--help"]],
    ["lakeferry status NAME", ["status", name]],
    ["lakeferry migrate", ["migrate"]],
  ];
  for (const [label, args] of exits) {
    const samples: Record<Mode, Sample[]> = { bundled: [], tsx: [] };
    for (let i = 0; i < runs; i++) {
      for (const mode of MODES) {
        if (mode === "bundled") await keepBuildFresh();
        samples[mode].push(await timeToExit([process.execPath, BIN, ...args], envOf(mode)));
      }
    }
    const wall = (mode: Mode): Figures => figures(samples[mode].map((s) => s.wall));
    const cpu = (mode: Mode): number | undefined => cpuMedian(samples[mode].map((s) => s.cpu));
    report({
      label,
      wall: { bundled: wall("bundled"), tsx: wall("tsx") },
      cpu: { bundled: cpu("bundled"), tsx: cpu("tsx") },
    });
  }
  for (const command of ["worker", "discoverer"] as const) {
    const starts: Record<Mode, ProcessStart[]> = { bundled: [], tsx: [] };
    for (let i = 0; i < runs; i++) {
      for (const mode of MODES) {
        if (mode === "bundled") await keepBuildFresh();
        starts[mode].push(await timeToReady(command, mode));
      }
    }
    const wall = (mode: Mode): Figures => figures(starts[mode].map((s) => s.ready));
    const cpu = (mode: Mode): number | undefined => cpuMedian(starts[mode].map((s) => s.cpu));
    const split = (mode: Mode): string =>
      `${seconds(figures(starts[mode].map((s) => s.loading)).median)} loading + ` +
      `${seconds(figures(starts[mode].map((s) => s.connecting)).median)} connecting`;
    report({
      label: `lakeferry ${command} (to ready)`,
      wall: { bundled: wall("bundled"), tsx: wall("tsx") },
      cpu: { bundled: cpu("bundled"), tsx: cpu("tsx") },
      split: { bundled: split("bundled"), tsx: split("tsx") },
    });
  }

  const node = figures(nodeSamples.map((s) => s.wall));
  const nodeCpu = cpuMedian(nodeSamples.map((s) => s.cpu));
  console.log(
    `\nlakeferry startup, ${runs} runs each; wall seconds as median / max, CPU seconds (user + system) as ` +
      `median.\nbuild ${seconds(buildMs)} s; node -e 0: wall ${pair(node)}, CPU ${seconds(nodeCpu)}; ` +
      `load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} CPUs\n`,
  );
  const width = Math.max(...rows.map((r) => r.label.length));
  console.log(
    `${"command".padEnd(width)}  ${"bundled wall".padEnd(13)}  ${"tsx wall".padEnd(13)}  ` +
      `CPU bundled / tsx  goal ${GOAL_MS / 1000} s (bundled median)`,
  );
  for (const row of rows) {
    console.log(
      `${row.label.padEnd(width)}  ${pair(row.wall.bundled).padEnd(13)}  ${pair(row.wall.tsx).padEnd(13)}  ` +
        `${`${seconds(row.cpu.bundled)} / ${seconds(row.cpu.tsx)}`.padEnd(17)}  ` +
        (row.wall.bundled.median <= GOAL_MS ? "PASS" : "MISS"),
    );
  }
  console.log("lakeferry --version: no such option");
  if (rebuilds > 0) console.log(`(built again ${rebuilds} times: sources changed during the bench)`);
  console.log("\nworker and discoverer, median split at their 'starting' log line (wall seconds):");
  for (const row of rows) {
    if (row.split) console.log(`  ${row.label}: bundled ${row.split.bundled}; tsx ${row.split.tsx}`);
  }
}

try {
  await main();
} finally {
  const db = createDatabase({ connectionString: databaseUrl, maxConnections: 1 });
  await db.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await db.close();
  const script =
    "local keys = redis.call('KEYS', ARGV[1]) for i = 1, #keys do redis.call('DEL', keys[i]) end return #keys";
  await promisify(execFile)("redis-cli", ["-u", redisUrl, "EVAL", script, "0", `${prefix}:*`]);
  await rm(dir, { recursive: true, force: true });
}
