import { LakeferryError } from "@lakeferry/core";
import { runSettled } from "@lakeferry/db";
import { setTimeout as sleep } from "node:timers/promises";
import type { PipelineContext } from "./pipeline-context.ts";

/** A run's files did not all settle before the deadline. */
export class RunTimeoutError extends LakeferryError {
  readonly runId: number;
  readonly progress: { total: number; settled: number; failed: number };

  constructor(
    runId: number,
    timeoutMs: number,
    progress: { total: number; settled: number; failed: number },
  ) {
    super(
      "RUN_TIMEOUT",
      `run ${runId}: ${progress.settled} of ${progress.total} files settled (${progress.failed} failed) after ${timeoutMs} ms`,
      { retryable: true },
    );
    this.runId = runId;
    this.progress = progress;
  }
}

/**
 * Polls until every file the run registered or modified is settled (SUCCESS, FAILED or SKIPPED).
 * @throws RunTimeoutError after `timeoutMs`; the signal's reason when aborted.
 */
export async function waitForRun(
  ctx: PipelineContext,
  runId: number,
  options: { timeoutMs: number; pollMs?: number; signal?: AbortSignal },
): Promise<{ total: number; settled: number; failed: number }> {
  const deadline = Date.now() + options.timeoutMs;
  const pollMs = options.pollMs ?? 500;
  for (;;) {
    options.signal?.throwIfAborted();
    const progress = await runSettled(ctx.db, runId);
    if (progress.settled >= progress.total) return progress;
    const left = deadline - Date.now();
    if (left <= 0) throw new RunTimeoutError(runId, options.timeoutMs, progress);
    await sleep(Math.min(pollMs, left), undefined, options.signal ? { signal: options.signal } : {});
  }
}
