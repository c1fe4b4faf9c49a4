import { describe, expect, it } from "vitest";
import { AllQueues, QUEUE_NAMES } from "../src/index.ts";
import { closeAfterTest, redisUrl, testPrefix } from "./helpers.ts";

describe("AllQueues", () => {
  it("opens every lakeferry queue under the prefix, and pings Redis", async () => {
    const prefix = testPrefix();
    const all = closeAfterTest(new AllQueues({ redisUrl: redisUrl(), prefix }));
    expect(all.queues.map((queue) => queue.name)).toEqual([...QUEUE_NAMES]);
    expect(all.queues.every((queue) => queue.opts.prefix === prefix)).toBe(true);
    await all.ping(2_000);
    await all.ping(2_000);
  });

  it("reports a Redis that does not answer within the deadline, instead of waiting for it", async () => {
    const all = closeAfterTest(new AllQueues({ redisUrl: "redis://127.0.0.1:9", prefix: testPrefix() }));
    const started = Date.now();
    await expect(all.ping(1_000)).rejects.toThrow();
    await expect(all.ping(1_000)).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});
