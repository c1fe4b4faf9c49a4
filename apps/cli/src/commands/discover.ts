import { listFiles } from "@lakeferry/db";
import { discoverFiles, RunTimeoutError, waitForRun } from "@lakeferry/pipeline";
import { EXIT_FAILED, EXIT_INVALID, EXIT_OK } from "../exit-codes.ts";
import { printJson, printLine } from "../output.ts";
import type { CliServices } from "../services.ts";

export interface DiscoverOptions {
  wait?: boolean;
  /** Seconds --wait waits at most. */
  timeout: number;
  full?: boolean;
  json?: boolean;
}

/**
 * `lakeferry discover NAME`: one discovery pass now. With --wait, waits until every file the pass
 * registered is settled. Exit 0 all good; 1 some file FAILED; 2 the pass itself failed or the wait timed out.
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
      `lakeferry: discovery run ${result.run.id} of ${name} failed: ${result.error.type}: ${result.error.message}\n`,
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
    settled = await waitForRun(ctx, result.run.id, { timeoutMs: options.timeout * 1_000, pollMs: 500 });
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
  if (settled.failed > 0) {
    // The run's own failures (the files it registered), at most 20, one line each.
    const failed = (await listFiles(ctx.db, ingestion.id, { status: "FAILED", limit: 1_000 }))
      .filter((file) => file.runId === result.run.id)
      .slice(0, 20);
    for (const file of failed) {
      const message = (file.errorMessage ?? "").replace(/\s*\n\s*/g, " ");
      const clipped = message.length > 300 ? `${message.slice(0, 300)}…` : message;
      process.stderr.write(`lakeferry: FAILED ${file.filePath}: ${file.errorType ?? "error"}: ${clipped}\n`);
    }
    process.stderr.write(
      `lakeferry: ${settled.failed} file(s) FAILED (see \`lakeferry files ${name} --status FAILED\`)\n`,
    );
    return EXIT_INVALID;
  }
  return EXIT_OK;
}
