/**
 * Invariants 1–3 under everything at once: the chaos suite (`npm run chaos`) short, with a fixed seed and
 * fewer files and faults. Workers and the discoverer are SIGKILLed and restarted, a worker is SIGSTOPped
 * past its lease, the ways to Spark and to Postgres are cut, slowed and blackholed, Spark crashes and
 * restarts, Postgres restarts, Redis is flushed and snapshots are expired while batches are open. Judged
 * from the table: every good file's rows exactly once, only the corrupt files FAILED, nothing unsettled.
 *
 * It runs its own Postgres, Redis and Spark Connect server (scripts/services.sh under .services/chaos-test
 * on ports of their own), so the restarts and the flush reach no other test.
 */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_WORKER_KNOBS, FAULT_KINDS, type ChaosOptions } from "../../../bench/chaos/chaos-options.ts";
import { runChaos } from "../../../bench/chaos/run-chaos.ts";
import { ROOT } from "./support.ts";

const options: ChaosOptions = {
  minutes: 2,
  seed: 20_261_129,
  files: 300,
  corrupt: 3,
  workers: 3,
  faults: {
    "kill-worker": 6,
    "kill-discoverer": 2,
    "pause-worker": 1,
    "spark-cut": 1,
    "spark-latency": 1,
    "spark-blackhole": 1,
    "spark-restart": 1,
    "pg-cut": 1,
    "pg-latency": 1,
    "pg-blackhole": 1,
    "pg-restart": 1,
    "redis-flush": 1,
    "expire-snapshots": 2,
  },
  worker: DEFAULT_WORKER_KNOBS,
  stack: {
    dir: join(ROOT, ".services/chaos-test"),
    sparkName: "lakeferry-spark-chaos-test",
    sparkPort: 15072,
    pgPort: 55452,
    redisPort: 56399,
    sparkMemory: "1g",
  },
  drainTimeoutMs: 5 * 60_000,
  keepStack: false,
  keepLogs: false,
  log: (line) => console.log(`[chaos] ${line}`),
};

describe("chaos, short", () => {
  it(
    "loses no file, writes none twice and fails only the corrupt ones, whatever breaks",
    async () => {
      const { summary, report } = await runChaos(options);
      console.log(report);
      const { verdict, tally } = summary;
      const uris = (offenders: { uri: string }[]): string[] => offenders.map((offender) => offender.uri);
      expect(uris(verdict.lost), "lost").toEqual([]);
      expect(uris(verdict.duplicated), "duplicated").toEqual([]);
      expect(uris(verdict.wronglyFailed), "good files FAILED").toEqual([]);
      expect(uris(verdict.corruptNotFailed), "corrupt files not FAILED").toEqual([]);
      expect(uris(verdict.unsettled), "PENDING or PROCESSING after the drain").toEqual([]);
      expect(verdict.strangers, "rows of files never landed").toEqual([]);
      expect(verdict.rows.inTable).toBe(verdict.rows.expected);
      expect(verdict.ok).toBe(true);

      // The faults happened: every planned one injected (a kill finds no target only if its process had
      // exited by itself), none failed to inject.
      for (const kind of FAULT_KINDS) {
        expect(tally.failed[kind], `${kind} failed to inject: ${tally.errors.join("; ")}`).toBe(0);
        expect(tally.injected[kind] + tally.skipped[kind], kind).toBe(options.faults[kind]);
      }
      for (const kind of [
        "pause-worker",
        "spark-restart",
        "pg-restart",
        "redis-flush",
        "expire-snapshots",
      ] as const)
        expect(tally.injected[kind], kind).toBe(options.faults[kind]);
      expect(tally.injected["kill-worker"] + tally.injected["kill-discoverer"]).toBeGreaterThanOrEqual(6);
    },
    20 * 60_000,
  );
});
