import { waitForRun, type PipelineContext } from "@lakeferry/pipeline";
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

/** How often the run's counts are read (one count over its files), and so how often the bar is redrawn. */
const POLL_MS = 500;
/** How often a progress line is printed on a pipe or in a log. */
const LINE_EVERY_MS = 5_000;

/**
 * Waits until every file of the run is settled, showing its progress on `out` meanwhile. `waitForRun`
 * decides when the run is done (and throws RunTimeoutError after `timeoutMs`); each of its readings of the
 * counts is handed to the display, so the run is polled once.
 */
export async function followRun(
  ctx: PipelineContext,
  runId: number,
  options: { timeoutMs: number; display: ProgressDisplay; out: NodeJS.WriteStream },
): Promise<RunProgress> {
  const view = options.display === "none" ? undefined : new ProgressView(runId, options.display, options.out);
  try {
    return await waitForRun(ctx, runId, {
      timeoutMs: options.timeoutMs,
      pollMs: POLL_MS,
      ...(view === undefined ? {} : { onProgress: (reading: RunProgress) => view.show(reading) }),
    });
  } finally {
    view?.end();
  }
}

/** Draws progress frames: a bar overwritten in place, or one line per frame. */
class ProgressView {
  readonly #runId: number;
  readonly #display: "bar" | "lines";
  readonly #out: NodeJS.WriteStream;
  /** The first reading: the speed is measured from it. */
  #first: ProgressSample | undefined;
  /** When the last progress line was printed (`lines` display). */
  #lastLineAtMs = -Infinity;
  #drawn = false;

  constructor(runId: number, display: "bar" | "lines", out: NodeJS.WriteStream) {
    this.#runId = runId;
    this.#display = display;
    this.#out = out;
  }

  /** Shows a reading: the bar is redrawn each time, a line is printed at most every {@link LINE_EVERY_MS}. */
  show(progress: RunProgress): void {
    const now = { ...progress, atMs: performance.now() };
    this.#first ??= now;
    const frame = progressFrame(this.#first, now);
    if (this.#display === "lines") {
      if (now.atMs - this.#lastLineAtMs < LINE_EVERY_MS) return;
      this.#lastLineAtMs = now.atMs;
      this.#out.write(`${renderProgressLine(this.#runId, frame)}\n`);
      return;
    }
    // Carriage return, the bar, then erase what a longer earlier frame left to its right.
    this.#out.write(`\r${renderProgressBar(frame, this.#out.columns)}\x1b[K`);
    this.#drawn = true;
  }

  /** Ends the display: the bar, last drawn with the final reading, is left on its line. */
  end(): void {
    if (this.#display === "bar" && this.#drawn) this.#out.write("\n");
  }
}
