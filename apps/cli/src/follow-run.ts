import { setTimeout as sleep } from "node:timers/promises";
import { runSettled } from "@lakeferry/db";
import { RunTimeoutError, waitForRun, type PipelineContext } from "@lakeferry/pipeline";
import {
  progressFrame,
  renderProgressBar,
  renderProgressLine,
  type ProgressSample,
  type RunProgress,
} from "./progress-bar.ts";

/**
 * How progress is shown while a run is followed: a bar redrawn in place (stdout is a terminal), a line
 * every few seconds (a pipe or a log), or nothing (`--json`, whose output is the final summary alone).
 */
export type ProgressDisplay = "bar" | "lines" | "none";

/** How often the progress is read (a count over the run's files) and shown, per display. */
const SHOW_EVERY_MS: Record<Exclude<ProgressDisplay, "none">, number> = { bar: 500, lines: 5_000 };

/**
 * Waits until every file of the run is settled, showing its progress on `out` meanwhile. `waitForRun`
 * decides when the run is done (and throws RunTimeoutError after `timeoutMs`); the display reads the
 * progress on its own, at its own pace.
 */
export async function followRun(
  ctx: PipelineContext,
  runId: number,
  options: { timeoutMs: number; display: ProgressDisplay; out: NodeJS.WriteStream },
): Promise<RunProgress> {
  const waiting = waitForRun(ctx, runId, { timeoutMs: options.timeoutMs, pollMs: 500 });
  if (options.display === "none") return waiting;
  const view = new ProgressView(runId, options.display, options.out);
  const stop = new AbortController();
  const showing = showUntilAborted(ctx, runId, view, SHOW_EVERY_MS[options.display], stop.signal);
  const stopShowing = async (last: RunProgress | undefined): Promise<void> => {
    stop.abort();
    await showing;
    view.end(last);
  };
  try {
    const progress = await waiting;
    await stopShowing(progress);
    return progress;
  } catch (error) {
    await stopShowing(error instanceof RunTimeoutError ? error.progress : undefined);
    throw error;
  }
}

/** Reads and shows the run's progress every `everyMs` (the first time at once) until `signal` aborts. */
async function showUntilAborted(
  ctx: PipelineContext,
  runId: number,
  view: ProgressView,
  everyMs: number,
  signal: AbortSignal,
): Promise<void> {
  while (!signal.aborted) {
    try {
      view.show(await runSettled(ctx.db, runId));
    } catch {
      // A missed reading is a missed frame: if Postgres stays away, waitForRun fails the command.
    }
    await sleep(everyMs, undefined, { signal }).catch(() => undefined);
  }
}

/** Draws progress frames: a bar overwritten in place, or one line per frame. */
class ProgressView {
  readonly #runId: number;
  readonly #display: "bar" | "lines";
  readonly #out: NodeJS.WriteStream;
  /** The first reading: the speed is measured from it. */
  #first: ProgressSample | undefined;
  #drawn = false;

  constructor(runId: number, display: "bar" | "lines", out: NodeJS.WriteStream) {
    this.#runId = runId;
    this.#display = display;
    this.#out = out;
  }

  show(progress: RunProgress): void {
    const now = { ...progress, atMs: performance.now() };
    this.#first ??= now;
    const frame = progressFrame(this.#first, now);
    if (this.#display === "lines") {
      this.#out.write(`${renderProgressLine(this.#runId, frame)}\n`);
      return;
    }
    // Carriage return, the bar, then erase what a longer earlier frame left to its right.
    this.#out.write(`\r${renderProgressBar(frame, this.#out.columns)}\x1b[K`);
    this.#drawn = true;
  }

  /** Ends the display: the bar is drawn a last time (with the final progress, when known) and left. */
  end(last: RunProgress | undefined): void {
    if (this.#display !== "bar") return;
    if (last !== undefined) this.show(last);
    if (this.#drawn) this.#out.write("\n");
  }
}
