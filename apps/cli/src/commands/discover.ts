import { runReport } from "@lakeferry/db";
import { discoverFiles, RunTimeoutError } from "@lakeferry/pipeline";
import { EXIT_FAILED, EXIT_INVALID, EXIT_OK } from "../exit-codes.ts";
import { followRun, type ProgressDisplay } from "../follow-run.ts";
import { clipEnd, errorText, outputWidth, printJson, printLine, sourceRelative } from "../output.ts";
import type { CliServices } from "../services.ts";

export interface DiscoverOptions {
  wait?: boolean;
  /** Seconds --wait waits at most. */
  timeout: number;
  full?: boolean;
  json?: boolean;
}

/** FAILED files of the run named on stderr after a wait, one line each; the rest are in `report`. */
const FAILURES_SHOWN = 20;

/**
 * `lakeferry discover NAME`: one discovery pass now. With --wait, follows the run until every file the pass
 * registered is settled, with a progress bar on a terminal (a line every few seconds on a pipe; nothing
 * with --json, which prints the final summary alone). Exit 0 all good; 1 some file FAILED; 2 the pass
 * itself failed or the wait timed out.
 */
export async function discoverCommand(
  s: CliServices,
  name: string,
  options: DiscoverOptions,
): Promise<number> {
  const ctx = await s.pipeline();
  const ingestion = await s.ingestion(name);
  const result = await discoverFiles(ctx, ingestion, { trigger: "manual", full: options.full ?? false });
  const summary = {
    run: result.run.id,
    found: result.found,
    created: result.created,
    modified: result.modified,
    enqueued: result.enqueued,
    listCalls: result.listCalls,
  };
  if (result.error) {
    if (options.json) printJson({ ...summary, error: result.error });
    process.stderr.write(
      `lakeferry: discovery run ${result.run.id} of ${name} failed: ${errorText(result.error.type, result.error.message)}\n`,
    );
    return EXIT_FAILED;
  }
  if (!options.json) {
    printLine(
      `run ${summary.run}: found ${summary.found}, new ${summary.created}, modified ${summary.modified}, enqueued ${summary.enqueued}`,
    );
  }
  if (!options.wait) {
    if (options.json) printJson(summary);
    return EXIT_OK;
  }

  let settled: { total: number; settled: number; failed: number };
  try {
    settled = await followRun(ctx, result.run.id, {
      timeoutMs: options.timeout * 1_000,
      display: progressDisplay(options),
      out: process.stdout,
    });
  } catch (error) {
    if (!(error instanceof RunTimeoutError)) throw error;
    if (options.json) printJson({ ...summary, ...error.progress });
    process.stderr.write(`lakeferry: ${error.message}; are workers running?\n`);
    return EXIT_FAILED;
  }
  if (options.json) {
    printJson({ ...summary, ...settled });
  } else {
    printLine(`run ${summary.run}: ${settled.settled}/${settled.total} settled, ${settled.failed} failed`);
  }
  if (settled.failed === 0) return EXIT_OK;
  const report = await runReport(ctx.db, result.run.id, { failureLimit: FAILURES_SHOWN });
  const width = outputWidth(false, process.stderr);
  for (const file of report?.failures ?? []) {
    const line = `lakeferry: FAILED ${sourceRelative(file.path, ingestion.sourceUri)}: ${errorText(file.errorType, file.error)}`;
    process.stderr.write(`${clipEnd(line, width)}\n`);
  }
  process.stderr.write(
    `lakeferry: ${settled.failed} file(s) FAILED (what to do: \`lakeferry report ${summary.run}\`)\n`,
  );
  return EXIT_INVALID;
}

/**
 * `lakeferry run NAME`: a discovery pass, then following its run to the end (`discover NAME --wait`).
 */
export async function runCommand(
  s: CliServices,
  name: string,
  options: Omit<DiscoverOptions, "wait">,
): Promise<number> {
  return discoverCommand(s, name, { ...options, wait: true });
}

/** A bar on a terminal, lines on a pipe, nothing when the output is JSON. */
function progressDisplay(options: { json?: boolean }): ProgressDisplay {
  if (options.json) return "none";
  return process.stdout.isTTY ? "bar" : "lines";
}
