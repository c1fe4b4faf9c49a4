import { LakeferryError } from "@lakeferry/core";
import { runSettled } from "@lakeferry/db";
import { setTimeout as sleep } from "node:timers/promises";
import type { PipelineContext } from "./pipeline-context.ts";

/** How far a run's files have got: the files it registered or modified, those settled, those FAILED. */
export interface RunProgress {
  total: number;
  /** SUCCESS, FAILED or SKIPPED. */
  settled: number;
  failed: number;
}

/** A run's files did not all settle before the deadline. */
export class RunTimeoutError extends LakeferryError {
  readonly runId: number;
  readonly progress: RunProgress;

  constructor(runId: number, timeoutMs: number, progress: RunProgress) {
    super(
      "RUN_TIMEOUT",
      `run ${runId}: ${progress.settled} of ${progress.total} files settled (${progress.failed} failed) after ${timeoutMs} ms`,
      { retryable: true },
    );
    this.runId = runId;
    this.progress = progress;
  }
}

/** How {@link waitForRun} polls. */
export interface WaitForRunOptions {
  /** How long to wait at most (ms). */
  timeoutMs: number;
  /** Time between two readings of the run's counts (ms). Default 500. */
  pollMs?: number;
  signal?: AbortSignal;
  /**
   * Called with every reading of the counts, the first at once and the last (settled, or at the deadline)
   * included, so that a progress display needs no reading of its own. An exception it throws ends the wait.
   */
  onProgress?: (progress: RunProgress) => void;
}

/**
 * Polls until every file the run registered or modified is settled (SUCCESS, FAILED or SKIPPED).
 * @throws RunTimeoutError after `timeoutMs`; the signal's reason when aborted.
 */
export async function waitForRun(
  ctx: PipelineContext,
  runId: number,
  options: WaitForRunOptions,
): Promise<RunProgress> {
  const deadline = Date.now() + options.timeoutMs;
  const pollMs = options.pollMs ?? 500;
  for (;;) {
    options.signal?.throwIfAborted();
    const progress = await runSettled(ctx.db, runId);
    options.onProgress?.(progress);
    if (progress.settled >= progress.total) return progress;
    const left = deadline - Date.now();
    if (left <= 0) throw new RunTimeoutError(runId, options.timeoutMs, progress);
    await sleep(Math.min(pollMs, left), undefined, options.signal ? { signal: options.signal } : {});
  }
}
