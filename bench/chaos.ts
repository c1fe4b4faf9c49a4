/**
 * The chaos suite (issue 7): lands files (JSON lines, varying row counts, some corrupt) for a discoverer
 * and N workers that reach Postgres and Spark through fault proxies, and meanwhile injects, at seeded
 * random moments, SIGKILLs of workers and the discoverer, a worker SIGSTOPped for longer than its lease,
 * connection cuts, latency and blackholes on the way to Spark and to Postgres, a Spark crash and restart,
 * a Postgres restart, a Redis FLUSHALL and Iceberg snapshot expiry while batches are open. The run has its
 * own Postgres, Redis and Spark Connect server (scripts/services.sh with their own folder and ports), so
 * none of this disturbs other tests. Then it stops the faults, lets the fleet drain, and judges from the
 * table: rows per `_source_file` exactly as in each good file, corrupt files FAILED, no good file FAILED,
 * nothing PENDING or PROCESSING. Prints the faults by kind and the verdict; exits 1 on any violation.
 *
 *   npm run chaos -- [--minutes 3] [--seed S] [--files 1000] [--workers 3] [--corrupt 5] [--keep-stack]
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseChaosArgs } from "./chaos/chaos-options.ts";
import { runChaos } from "./chaos/run-chaos.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const started = Date.now();
const log = (line: string): void => {
  // Wall-clock time too, to line up with the processes' logs (pino's epoch milliseconds).
  const now = new Date();
  const elapsed = ((now.getTime() - started) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[chaos ${elapsed} s ${now.toISOString().slice(11, 23)}] ${line}\n`);
};

let options;
try {
  options = parseChaosArgs(process.argv.slice(2), root, log);
} catch (error) {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
}
const result = await runChaos(options);
console.log(result.report);
process.exit(result.ok ? 0 : 1);
