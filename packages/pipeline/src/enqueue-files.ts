import type { FileRef, Ingestion } from "@lakeferry/db";
import type { IngestQueue, RetryPolicy } from "@lakeferry/queue";

/** The retry policy of an ingestion's file jobs. */
export function retryPolicyOf(ingestion: Ingestion): RetryPolicy {
  return { attempts: ingestion.maxAttempts, backoffMs: ingestion.backoffMs };
}

/**
 * One ingest job per file version (the job id is derived from the file row, so enqueueing twice is a
 * no-op). `firstJobs`: the versions were registered just now by the caller (see IngestQueue.enqueue).
 * Returns how many jobs were new.
 */
export async function enqueueFiles(
  queue: IngestQueue,
  ingestion: Ingestion,
  files: readonly Pick<FileRef, "id" | "version">[],
  options: { firstJobs?: boolean } = {},
): Promise<number> {
  if (files.length === 0) return 0;
  const retry = retryPolicyOf(ingestion);
  return queue.enqueue(
    files.map((file) => ({
      data: { fileId: file.id, version: file.version, ingestionId: ingestion.id },
      retry,
    })),
    options,
  );
}
