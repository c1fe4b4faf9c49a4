/** The progress bar of `run` and `discover --wait`: what it says, and that it never outgrows the terminal. */
import { describe, expect, it } from "vitest";
import {
  formatDuration,
  progressFrame,
  renderProgressBar,
  renderProgressLine,
  type ProgressFrame,
} from "../src/progress-bar.ts";

const frame = (overrides: Partial<ProgressFrame> = {}): ProgressFrame => ({
  total: 500,
  settled: 120,
  failed: 2,
  filesPerSecond: 40,
  ...overrides,
});

describe("renderProgressBar", () => {
  it("shows the bar, settled/total, percent, failures, speed and ETA on a wide terminal", () => {
    const bar = renderProgressBar(frame(), 100);
    expect(bar).toMatch(/^\[#+-+\] 120\/500 settled 24% {2}2 failed {2}40\.0 files\/s {2}ETA 10s$/);
    expect(bar).toHaveLength(99);
    // The filled part is the settled share of the bar.
    const inner = bar.slice(1, bar.indexOf("]"));
    expect(inner.replace(/-/g, "")).toHaveLength(Math.round(inner.length * 0.24));
  });

  it("leaves out what it cannot tell yet, and failures when there are none", () => {
    const bar = renderProgressBar(frame({ failed: 0, filesPerSecond: undefined }), 80);
    expect(bar).toMatch(/\] 120\/500 settled 24%$/);
    expect(renderProgressBar(frame({ settled: 500, filesPerSecond: 12.5 }), 80)).toMatch(
      /^\[#+\] 500\/500 settled 100% {2}2 failed {2}12\.5 files\/s {2}ETA 0s$/,
    );
    // An empty run is done.
    expect(renderProgressBar(frame({ total: 0, settled: 0, failed: 0 }), 40)).toMatch(
      /^\[#+\] 0\/0 settled 100%/,
    );
  });

  it("drops speed and ETA, then the bar, then cuts the text as the terminal narrows", () => {
    expect(renderProgressBar(frame(), 50)).toMatch(/^\[#*-+\] 120\/500 settled 24% {2}2 failed$/);
    expect(renderProgressBar(frame(), 30)).toBe("120/500 settled 24%  2 failed");
    expect(renderProgressBar(frame(), 12)).toBe("120/500 set");
  });

  it("is never wider than the terminal's columns less one, whatever the numbers", () => {
    const frames = [
      frame(),
      frame({ total: 12_345_678, settled: 1_234_567, failed: 98_765, filesPerSecond: 0.001 }),
      frame({ settled: 0, failed: 0, filesPerSecond: 0 }),
      frame({ total: 1, settled: 1, failed: 1, filesPerSecond: 1e9 }),
    ];
    for (const f of frames) {
      for (let columns = 0; columns <= 240; columns++) {
        const bar = renderProgressBar(f, columns);
        expect(bar.length, `${columns} columns: ${bar}`).toBeLessThanOrEqual(Math.max(0, columns - 1));
      }
    }
  });
});

describe("renderProgressLine", () => {
  it("says the run, the counts, the speed and the ETA in one plain line", () => {
    expect(renderProgressLine(7, frame())).toBe(
      "run 7: 120/500 settled (24%), 2 failed, 40.0 files/s, ETA 10s",
    );
    expect(renderProgressLine(7, frame({ filesPerSecond: undefined, failed: 0 }))).toBe(
      "run 7: 120/500 settled (24%), 0 failed",
    );
  });
});

describe("progressFrame", () => {
  it("measures speed from the first sample, once a second has passed", () => {
    const first = { total: 100, settled: 10, failed: 0, atMs: 1_000 };
    expect(progressFrame(first, { ...first, atMs: 1_500 }).filesPerSecond).toBeUndefined();
    expect(progressFrame(first, { total: 100, settled: 40, failed: 3, atMs: 4_000 })).toEqual({
      total: 100,
      settled: 40,
      failed: 3,
      filesPerSecond: 10,
    });
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0s"],
    [9.2, "10s"],
    [65, "1m05s"],
    [3_725, "1h02m"],
  ])("%s s is %s", (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});
