/** waitForRun hands every reading of a run's counts to onProgress, so a progress display polls nothing itself. */
import { afterEach, describe, expect, it } from "vitest";
import { discoverFiles, RunTimeoutError, waitForRun } from "../src/index.ts";
import { createWorld, jsonRows, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

type Progress = { total: number; settled: number; failed: number };

describe("waitForRun onProgress", () => {
  it("reports each poll's counts, the first at once and the last (deadline or settled) included", async () => {
    const w = (world = await createWorld());
    for (let i = 0; i < 3; i++) await w.file(`f${i}.json`, jsonRows(i * 10, 2));
    const ingestion = await w.ingestion();
    const run = await discoverFiles(w, ingestion);
    expect(run).toMatchObject({ created: 3 });

    // No worker yet: nothing settles, and the deadline's reading is the last one reported.
    const waiting: Progress[] = [];
    const timedOut = await waitForRun(w, run.run.id, {
      timeoutMs: 1_200,
      pollMs: 200,
      onProgress: (p) => waiting.push(p),
    }).catch((error: unknown) => error);
    expect(timedOut).toBeInstanceOf(RunTimeoutError);
    expect(waiting.length).toBeGreaterThanOrEqual(3);
    for (const p of waiting) expect(p).toEqual({ total: 3, settled: 0, failed: 0 });
    expect(waiting.at(-1)).toEqual((timedOut as RunTimeoutError).progress);

    await w.worker();
    const seen: Progress[] = [];
    const settled = await waitForRun(w, run.run.id, {
      timeoutMs: 120_000,
      pollMs: 100,
      onProgress: (p) => seen.push(p),
    });
    expect(settled).toEqual({ total: 3, settled: 3, failed: 0 });
    expect(seen.at(-1)).toEqual(settled);
    const counts = seen.map((p) => p.settled);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
  });

  it("ends the wait with the exception onProgress throws", async () => {
    const w = (world = await createWorld());
    await w.file("f.json", jsonRows(0, 1));
    const run = await discoverFiles(w, await w.ingestion());
    const stop = new Error("display closed");
    await expect(
      waitForRun(w, run.run.id, {
        timeoutMs: 60_000,
        onProgress: () => {
          throw stop;
        },
      }),
    ).rejects.toBe(stop);
  });
});
