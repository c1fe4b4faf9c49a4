import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import { requireText } from "./values.ts";

/**
 * When the oldest batch of `table` that may still be published was opened (OPEN or PUBLISHING, by the
 * database clock), or null when there is none. Its staged snapshot was written after that moment: snapshot
 * expiry that keeps everything from it on leaves every such batch publishable, and the table's lineage
 * since then, which tells a publish that happened from one still to do. Few rows match (the partial
 * indexes on OPEN and PUBLISHING batches), so it costs little however long the batch history is.
 */
export async function oldestPendingBatchAt(db: Database, table: string): Promise<Date | null> {
  requireText("table", table);
  return runOperation("oldestPendingBatchAt", async () => {
    const { rows } = await db.pool.query<{ oldest: Date | null }>(
      `SELECT min(created_at) AS oldest FROM write_batches
        WHERE table_name = $1 AND state IN ('OPEN', 'PUBLISHING')`,
      [table],
    );
    return rows[0]?.oldest ?? null;
  });
}
