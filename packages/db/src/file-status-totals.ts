import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import type { FileStatus } from "./types.ts";

/** How many files one ingestion has in one status. */
export interface FileStatusTotal {
  /** The ingestion's name. */
  ingestion: string;
  status: FileStatus;
  files: number;
}

/**
 * Files by ingestion and status across every ingestion, in one grouped query (for metrics). Only the
 * combinations that have files are returned.
 */
export async function fileStatusTotals(db: Database): Promise<FileStatusTotal[]> {
  return runOperation("fileStatusTotals", async () => {
    const { rows } = await db.pool.query<{ ingestion: string; status: FileStatus; files: number }>(
      `SELECT i.name AS ingestion, f.status, count(*)::int AS files
         FROM processed_files f JOIN ingestions i ON i.id = f.ingestion_id
        GROUP BY i.name, f.status`,
    );
    return rows;
  });
}
