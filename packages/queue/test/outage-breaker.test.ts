/**
 * The outage breaker closes once nothing is paused any more, not only when a job succeeds: a queue left
 * empty after an outage does not keep it open (and `lakeferry_breaker_open` at 1) for good.
 */
import { LakeferryError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import { IngestQueue, IngestWorker, PermanentJobError, type IngestJobContext } from "../src/index.ts";
import { closeAfterTest, redisUrl, testPrefix, waitFor } from "./helpers.ts";

interface Seen {
  outage: string;
  pauseMs: number;
  /** `performance.now()` when it was called. */
  at: number;
}

const sparkDown = (): LakeferryError =>
  new LakeferryError("SPARK_UNAVAILABLE", "Spark is down (test)", { retryable: true, outage: "spark" });

/** A worker whose breaker pauses 300 ms (±20 %), recording every call of onOutage; one job enqueued. */
async function breakerWorld(
  process: (job: IngestJobContext, call: number) => Promise<void>,
): Promise<Seen[]> {
  const prefix = testPrefix();
  const queue = closeAfterTest(new IngestQueue({ redisUrl: redisUrl(), prefix }));
  await queue.enqueue([
    { data: { fileId: 1, version: 1, ingestionId: 3 }, retry: { attempts: 1, backoffMs: 10 } },
  ]);
  const seen: Seen[] = [];
  let calls = 0;
  const worker = new IngestWorker({
    redisUrl: redisUrl(),
    prefix,
    concurrency: 1,
    minOutagePauseMs: 300,
    maxOutagePauseMs: 300,
    onOutage: ({ outage, pauseMs }) => seen.push({ outage, pauseMs, at: performance.now() }),
    process: (job) => process(job, ++calls),
  });
  closeAfterTest({ close: () => worker.close({ timeoutMs: 3_000, abortGraceMs: 100 }) });
  await worker.start();
  return seen;
}

describe("the outage breaker", () => {
  it("closes, naming the dependency, when its pause ends with no job left to try it", async () => {
    // The job meets the outage, then fails for a reason of its own when tried again: no job ever succeeds.
    let failedAt = 0;
    const seen = await breakerWorld(async (_job, call) => {
      if (call === 1) throw sparkDown();
      failedAt = performance.now();
      throw new PermanentJobError("the file is gone (test)");
    });
    await waitFor("the breaker to close", () => seen.length === 2, 10_000);
    expect(seen[0]).toMatchObject({ outage: "spark" });
    expect(seen[0]?.pauseMs).toBeGreaterThanOrEqual(240);
    expect(seen[0]?.pauseMs).toBeLessThanOrEqual(360);
    // Closed after the job's verdict, about a second (the wait for a job to try the dependency) after its
    // pause ended, and not at the job's verdict itself: only a success says the dependency answers.
    const [open, closed] = seen as [Seen, Seen];
    expect(closed).toMatchObject({ outage: "spark", pauseMs: 0 });
    expect(closed.at).toBeGreaterThan(failedAt);
    expect(closed.at - open.at).toBeGreaterThanOrEqual(open.pauseMs + 900);
    expect(closed.at - open.at).toBeLessThan(open.pauseMs + 3_000);
  });

  it("waits for a job that started after the pause: a slow probe's success closes it, once", async () => {
    let probeEnded = 0;
    const seen = await breakerWorld(async (_job, call) => {
      if (call === 1) throw sparkDown();
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      probeEnded = performance.now();
    });
    await waitFor("the breaker to close", () => seen.length === 2, 10_000);
    expect(seen[1]).toMatchObject({ outage: "none", pauseMs: 0 });
    expect(seen[1]?.at).toBeGreaterThanOrEqual(probeEnded);
    // Nothing more: the timer that would close an unprobed breaker found it closed.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(seen).toHaveLength(2);
  });
});
