import type { RunProgress } from "@lakeferry/pipeline";

export type { RunProgress };

/** One look at a run's progress, and when it was taken. */
export interface ProgressSample extends RunProgress {
  /** Milliseconds (any clock, the same for every sample). */
  atMs: number;
}

/** What the bar and the progress lines show. */
export interface ProgressFrame extends RunProgress {
  /** Files settled per second since following began; undefined until it can be told (under a second). */
  filesPerSecond: number | undefined;
}

/** The frame for `now`, its speed measured from `first` (the first sample since following began). */
export function progressFrame(first: ProgressSample, now: ProgressSample): ProgressFrame {
  const seconds = (now.atMs - first.atMs) / 1000;
  const filesPerSecond = seconds >= 1 ? Math.max(0, now.settled - first.settled) / seconds : undefined;
  return { total: now.total, settled: now.settled, failed: now.failed, filesPerSecond };
}

/** Seconds until every file is settled at the present speed; undefined when it cannot be told. */
function etaSeconds(frame: ProgressFrame): number | undefined {
  if (frame.settled >= frame.total) return 0;
  if (!frame.filesPerSecond) return undefined;
  return (frame.total - frame.settled) / frame.filesPerSecond;
}

/** `1h02m`, `3m05s`, `12s`. */
export function formatDuration(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s >= 3600) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  if (s >= 60) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${s}s`;
}

function percent(frame: RunProgress): number {
  return frame.total === 0 ? 100 : Math.floor((frame.settled / frame.total) * 100);
}

/** The parts after the bar, most important first: later ones are dropped when the line is too narrow. */
function barParts(frame: ProgressFrame): string[] {
  const eta = etaSeconds(frame);
  return [
    `${frame.settled}/${frame.total} settled ${percent(frame)}%`,
    ...(frame.failed > 0 ? [`${frame.failed} failed`] : []),
    ...(frame.filesPerSecond === undefined ? [] : [`${frame.filesPerSecond.toFixed(1)} files/s`]),
    ...(eta === undefined ? [] : [`ETA ${formatDuration(eta)}`]),
  ];
}

/** The bar itself is left out when it would be narrower than this. */
const MIN_BAR = 10;

/**
 * The one-line progress bar, `[#####-----] 120/500 settled 24%  2 failed  35.2 files/s  ETA 11s`, fitted
 * to a terminal `columns` wide: at most `columns - 1` characters (writing into the last column makes some
 * terminals wrap, and the bar is redrawn in place with a carriage return). The bar takes what the text
 * leaves; on a narrow terminal the speed and ETA go first, then the bar (the text gets back what still fits),
 * then the text is cut.
 */
export function renderProgressBar(frame: ProgressFrame, columns: number): string {
  const room = Math.max(0, columns - 1);
  const parts = barParts(frame);
  for (let n = parts.length; n >= 1; n--) {
    const text = parts.slice(0, n).join("  ");
    const barWidth = room - text.length - 3; // "[", "]", and a space
    if (barWidth >= MIN_BAR) {
      const done = Math.round((barWidth * percent(frame)) / 100);
      return `[${"#".repeat(done)}${"-".repeat(barWidth - done)}] ${text}`;
    }
  }
  for (let n = parts.length; n >= 1; n--) {
    const text = parts.slice(0, n).join("  ");
    if (text.length <= room) return text;
  }
  return (parts[0] ?? "").slice(0, room);
}

/** A progress line for a pipe or a log: `run 12: 120/500 settled (24%), 2 failed, 35.2 files/s, ETA 11s`. */
export function renderProgressLine(runId: number, frame: ProgressFrame): string {
  const eta = etaSeconds(frame);
  return [
    `run ${runId}: ${frame.settled}/${frame.total} settled (${percent(frame)}%)`,
    `${frame.failed} failed`,
    ...(frame.filesPerSecond === undefined ? [] : [`${frame.filesPerSecond.toFixed(1)} files/s`]),
    ...(eta === undefined ? [] : [`ETA ${formatDuration(eta)}`]),
  ].join(", ");
}
