import { FAULT_KINDS, type FaultKind } from "./chaos-options.ts";
import type { Rng } from "./rng.ts";

/** One fault of the schedule, every random choice made up front so that a seed repeats the schedule. */
export interface PlannedFault {
  kind: FaultKind;
  /** When it starts, in ms after the fault window opens. */
  atMs: number;
  /**
   * How long it lasts, in ms: the time a killed process stays dead, a paused one stopped, latency or a
   * blackhole stays on, a restarted service stays down. 0 for instant faults (cuts, flushes, expiry).
   */
  durationMs: number;
  /** Which worker slot, for worker kills and pauses. */
  worker: number;
  /** Latency in ms, for latency faults. */
  latencyMs: number;
  jitterMs: number;
}

/**
 * Spreads `counts` faults of each kind over the first 90 % of a `windowMs` window at seeded random
 * moments. A pause lasts longer than the workers' lease, so that its files are taken over meanwhile.
 */
export function planFaults(
  rng: Rng,
  counts: Record<FaultKind, number>,
  options: { windowMs: number; workers: number; leaseMs: number },
): PlannedFault[] {
  const plan: PlannedFault[] = [];
  for (const kind of FAULT_KINDS) {
    const stream = rng.fork(kind);
    for (let n = 0; n < counts[kind]; n++) {
      plan.push({
        kind,
        atMs: Math.round(stream.between(0.03, 0.9) * options.windowMs),
        durationMs: Math.round(duration(kind, stream, options.leaseMs)),
        worker: stream.int(0, options.workers - 1),
        latencyMs: Math.round(stream.between(100, 1_500)),
        jitterMs: Math.round(stream.between(0, 100)),
      });
    }
  }
  return plan.sort((a, b) => a.atMs - b.atMs);
}

function duration(kind: FaultKind, rng: Rng, leaseMs: number): number {
  switch (kind) {
    case "kill-worker":
    case "kill-discoverer":
      return rng.between(200, 4_000);
    case "pause-worker":
      return leaseMs + rng.between(1_000, 6_000);
    case "spark-latency":
    case "pg-latency":
      return rng.between(4_000, 15_000);
    case "spark-blackhole":
      return rng.between(2_000, 20_000);
    case "pg-blackhole":
      return rng.between(2_000, 15_000);
    case "spark-restart":
      return rng.between(1_000, 5_000);
    case "pg-restart":
      return rng.between(1_000, 6_000);
    case "spark-cut":
    case "pg-cut":
    case "redis-flush":
    case "expire-snapshots":
      return 0;
  }
}
