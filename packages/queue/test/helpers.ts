import { randomBytes } from "node:crypto";
import { Queue } from "bullmq";
import { Redis } from "ioredis";
import { onTestFinished } from "vitest";

/** REDIS_URL from `eval "$(bash scripts/services.sh env)"`. */
export function redisUrl(): string {
  const url = process.env.REDIS_URL;
  if (!url) throw new Error('REDIS_URL is not set; run: eval "$(bash scripts/services.sh env)"');
  return url;
}

/**
 * A BullMQ prefix of this test's own. Its keys are deleted after the test has passed and its resources have
 * closed (hooks run in reverse order, and this one is registered first); a failed test's keys stay for
 * inspection.
 */
export function testPrefix(): string {
  const prefix = `lftest-${randomBytes(5).toString("hex")}`;
  onTestFinished(async ({ task }) => {
    if (task.result?.state === "pass") await deletePrefix(prefix);
  });
  return prefix;
}

/** Closes `resource` when the test ends, passed or failed. */
export function closeAfterTest<T extends { close(): Promise<unknown> }>(resource: T): T {
  onTestFinished(async () => {
    await resource.close();
  });
  return resource;
}

/** Polls `check` until it returns a truthy value or `timeoutMs` passes. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A raw BullMQ view of a queue, to check job states the package does not expose. */
export function inspectQueue(prefix: string, queueName: string): Queue {
  const connection = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  const queue = new Queue(queueName, { connection, prefix });
  onTestFinished(async () => {
    await queue.close();
    await connection.quit();
  });
  return queue;
}

/** Deletes every key under `prefix`. */
async function deletePrefix(prefix: string): Promise<void> {
  const redis = new Redis(redisUrl());
  try {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
  } finally {
    await redis.quit();
  }
}

/** A promise with its resolve function outside. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

/** A plain Redis connection, for fault injection. */
export function rawRedis(): Redis {
  const redis = new Redis(redisUrl(), { maxRetriesPerRequest: null });
  onTestFinished(async () => {
    await redis.quit();
  });
  return redis;
}
