import type { Logger } from "@lakeferry/core";
import type { Database } from "@lakeferry/db";
import { BatchLifecycle, type BatchResolution, type BatchWriter } from "./batch-lifecycle.ts";

export type { BatchResolution } from "./batch-lifecycle.ts";

/**
 * Resolves a write batch whose writer may be gone (the reconciler's entry point): see
 * {@link BatchLifecycle.resolve}. An OPEN batch is abandoned, a PUBLISHING one published (unless the table
 * already holds its rows), a COMMITTED one has its files recorded. With `skipLive`, a batch its writer may
 * still be working on is left alone ("live"). `settledHere` is false for a batch found settled meanwhile
 * (by its writer, who announces it).
 */
export async function resolveBatch(
  db: Database,
  writer: BatchWriter,
  batchId: string,
  options: { skipLive: boolean; logger: Logger; signal?: AbortSignal; deadlineMs?: number },
): Promise<{ resolution: BatchResolution; settledHere: boolean }> {
  const lifecycle = new BatchLifecycle({ db, writer, workerId: "reconciler", logger: options.logger });
  return lifecycle.settle(batchId, {
    skipLive: options.skipLive,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(options.deadlineMs === undefined ? {} : { deadlineMs: options.deadlineMs }),
  });
}
