import { join } from "node:path";
import { parseArgs } from "node:util";
import { randomSeed } from "./rng.ts";

/** Every fault the driver injects, by kind. */
export const FAULT_KINDS = [
  "kill-worker",
  "kill-discoverer",
  "pause-worker",
  "spark-cut",
  "spark-latency",
  "spark-blackhole",
  "spark-restart",
  "pg-cut",
  "pg-latency",
  "pg-blackhole",
  "pg-restart",
  "redis-flush",
  "expire-snapshots",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The chaos run's own services: a Postgres, a Redis and a Spark Connect server that nothing else uses. */
export interface StackOptions {
  /** `LAKEFERRY_SERVICES_DIR` for `scripts/services.sh`: their data and logs. */
  dir: string;
  /** `LAKEFERRY_SPARK_NAME`. */
  sparkName: string;
  sparkPort: number;
  pgPort: number;
  redisPort: number;
  /** `LAKEFERRY_SPARK_MEMORY`, e.g. `2g`. */
  sparkMemory: string;
}

/** Worker settings that make takeovers and recovery happen within a run. */
export interface WorkerKnobs {
  leaseMs: number;
  reconcileIntervalMs: number;
  batchGraceMs: number;
  batchMaxFiles: number;
  concurrency: number;
}

export interface ChaosOptions {
  /** Length of the fault window, in minutes (the files land in its first 60 %). */
  minutes: number;
  /** Seeds the files and the fault schedule. */
  seed: number;
  /** Files landed, corrupt ones included. */
  files: number;
  /** Corrupt files among them. */
  corrupt: number;
  /** Worker processes. */
  workers: number;
  /** Faults of each kind; a kind not given gets {@link defaultFaultCounts}. */
  faults: Record<FaultKind, number>;
  worker: WorkerKnobs;
  stack: StackOptions;
  /** How long the fleet may take to settle every file once the faults stop, in ms. */
  drainTimeoutMs: number;
  /** Leave the chaos services running at the end (they are stopped otherwise). */
  keepStack: boolean;
  /** Keep the worker and discoverer logs of a run that passed (a failed run keeps them always). */
  keepLogs: boolean;
  /** Progress lines (stderr in the CLI). */
  log: (line: string) => void;
}

/** How many faults of each kind a run of `minutes` injects: 20+ process kills even in the shortest. */
export function defaultFaultCounts(minutes: number): Record<FaultKind, number> {
  const per = (perMinute: number, floor: number): number => Math.max(floor, Math.round(perMinute * minutes));
  return {
    "kill-worker": per(6, 16),
    "kill-discoverer": per(1.5, 4),
    "pause-worker": per(0.5, 2),
    "spark-cut": per(1, 3),
    "spark-latency": per(0.5, 2),
    "spark-blackhole": per(0.5, 2),
    "spark-restart": Math.max(1, Math.floor(minutes / 4)),
    "pg-cut": per(1, 3),
    "pg-latency": per(0.5, 2),
    "pg-blackhole": per(0.5, 2),
    "pg-restart": Math.max(1, Math.floor(minutes / 3)),
    "redis-flush": per(0.5, 2),
    "expire-snapshots": per(1, 3),
  };
}

export const DEFAULT_WORKER_KNOBS: WorkerKnobs = {
  leaseMs: 5_000,
  reconcileIntervalMs: 2_000,
  batchGraceMs: 5_000,
  batchMaxFiles: 25,
  concurrency: 60,
};

/** The full run's services (`npm run chaos`); the test uses other ports and another folder. */
export function defaultStack(root: string): StackOptions {
  return {
    dir: join(root, ".services/chaos"),
    sparkName: "lakeferry-spark-chaos",
    sparkPort: 15062,
    pgPort: 55442,
    redisPort: 56389,
    sparkMemory: "2g",
  };
}

const USAGE = `usage: npm run chaos -- [--minutes N] [--seed S] [--files N] [--workers N] [--corrupt N] [--keep-stack]
  --minutes N   length of the fault window (default 3)
  --seed S      seeds the files and the fault schedule (default random; printed)
  --files N     files landed, corrupt ones included (default 1000)
  --workers N   worker processes (default 3)
  --corrupt N   corrupt files (default 5)
  --keep-stack  leave the chaos run's own Postgres, Redis and Spark running afterwards`;

/** Reads the driver's flags; throws with the usage on a bad one. */
export function parseChaosArgs(argv: string[], root: string, log: (line: string) => void): ChaosOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: "string", default: "3" },
      seed: { type: "string" },
      files: { type: "string", default: "1000" },
      workers: { type: "string", default: "3" },
      corrupt: { type: "string", default: "5" },
      "keep-stack": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) throw new Error(USAGE);
  const number = (flag: string, text: string, min: number, integer = true): number => {
    const value = Number(text);
    if (!Number.isFinite(value) || value < min || (integer && !Number.isInteger(value))) {
      throw new Error(
        `--${flag} must be ${integer ? "a whole number" : "a number"} ≥ ${min}, got "${text}"\n${USAGE}`,
      );
    }
    return value;
  };
  const minutes = number("minutes", values.minutes, 0.5, false);
  const files = number("files", values.files, 1);
  const corrupt = number("corrupt", values.corrupt, 0);
  if (corrupt >= files) throw new Error(`--corrupt (${corrupt}) must be fewer than --files (${files})`);
  return {
    minutes,
    seed: values.seed === undefined ? randomSeed() : number("seed", values.seed, 0),
    files,
    corrupt,
    workers: number("workers", values.workers, 1),
    faults: defaultFaultCounts(minutes),
    worker: DEFAULT_WORKER_KNOBS,
    stack: defaultStack(root),
    drainTimeoutMs: 8 * 60_000,
    keepStack: values["keep-stack"],
    keepLogs: true,
    log,
  };
}
