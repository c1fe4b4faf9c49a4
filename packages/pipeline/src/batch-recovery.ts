import type { Logger } from "@lakeferry/core";
import { readBatch, recordOutcomes, type Database, type Outcome } from "@lakeferry/db";
import type { WriteResult } from "@lakeferry/iceberg";
import type { BatchWriter } from "./group-commit-batcher.ts";

/** How resolving a batch ended. */
export type BatchResolution = "committed" | "abandoned" | "live";

/**
 * Resolves a write batch whose outcome was never recorded (its worker died or was interrupted between
 * opening it and recording it): when the table's snapshots carry the batch id, its files are recorded
 * SUCCESS from that commit (nothing is written again); when they do not, the batch is ABANDONED, so its
 * files, once their leases have expired, go back to PENDING.
 *
 * With `skipLive`, a batch one of whose files is still leased is left alone ("live"): its writer may still
 * be committing it.
 */
export async function resolveBatch(
  db: Database,
  writer: BatchWriter,
  batchId: string,
  options: { skipLive: boolean; logger: Logger; signal?: AbortSignal },
): Promise<{ resolution: BatchResolution; found?: WriteResult }> {
  const batch = await readBatch(db, batchId);
  if (!batch) return { resolution: "abandoned" };
  const members = batch.members;
  if (options.skipLive && members.some((member) => member.liveLease)) return { resolution: "live" };
  const found = await writer.findCommittedBatch(
    batch.table,
    batch.id,
    options.signal ? { signal: options.signal } : undefined,
  );
  if (!found) {
    await recordOutcomes(db, {
      worker: null,
      outcomes: [],
      batch: {
        id: batch.id,
        state: "ABANDONED",
        errorMessage: "never committed: no snapshot of the table carries it",
      },
    });
    options.logger.info({ batchId: batch.id, table: batch.table, files: members.length }, "batch abandoned");
    return { resolution: "abandoned" };
  }
  const outcomes: Outcome[] = members.map((member) => ({
    id: member.id,
    version: member.version,
    status: "SUCCESS",
    recordsIngested: found.records.get(member.path) ?? 0,
    bytesRead: member.size,
    snapshotId: found.snapshotId,
    batchId: batch.id,
  }));
  // Reconciler's view (worker null): whoever holds the files now, their rows are in this snapshot.
  const { applied } = await recordOutcomes(db, {
    worker: null,
    outcomes,
    batch: { id: batch.id, state: "COMMITTED", snapshotId: found.snapshotId },
  });
  options.logger.info(
    {
      batchId: batch.id,
      table: batch.table,
      snapshotId: found.snapshotId,
      files: members.length,
      recorded: applied.length,
    },
    "batch found committed; files recorded from it",
  );
  return { resolution: "committed", found };
}
