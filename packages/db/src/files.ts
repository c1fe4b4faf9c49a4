import { InvalidInputError } from "@lakeferry/core";
import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import type { FileAttemptRecord, FileRecord, FileStatus, FileVersionRecord } from "./types.ts";
import { FILE_STATUSES } from "./types.ts";
import type { FileAttempt, FileVersion, ProcessedFile } from "./generated/prisma/client.ts";
import {
  requireCount,
  requireId,
  requireOneOf,
  toDecimalOrNull,
  toNumber,
  toNumberOrNull,
} from "./values.ts";

/** A processed_files row as Prisma reads it, or as {@link FILE_COLUMNS} selects it (int8 as text). */
type FileRow = {
  [K in keyof ProcessedFile]: ProcessedFile[K] extends bigint
    ? bigint | string
    : ProcessedFile[K] extends bigint | null
      ? bigint | string | null
      : ProcessedFile[K];
};

/**
 * processed_files' columns named as FileRecord's fields, for the bulk lookups that bypass Prisma: its query
 * compiler spent about 3 ms of CPU per 100 ids of an `in` list (bench:submit), more than Postgres did.
 */
const FILE_COLUMNS = `id, ingestion_id AS "ingestionId", file_path AS "filePath", file_size AS "fileSize",
  modified_at AS "modifiedAt", etag, version, status, discovered_at AS "discoveredAt",
  processing_started_at AS "processingStartedAt", processed_at AS "processedAt",
  records_ingested AS "recordsIngested", records_parsed AS "recordsParsed",
  records_rejected AS "recordsRejected", first_error AS "firstError", bytes_read AS "bytesRead",
  processing_duration_ms AS "processingDurationMs", error_message AS "errorMessage",
  error_type AS "errorType", retry_count AS "retryCount", attempts, run_id AS "runId",
  lease_owner AS "leaseOwner", lease_expires_at AS "leaseExpiresAt", batch_id AS "batchId",
  snapshot_id AS "snapshotId", updated_at AS "updatedAt"`;

function toFileRecord(row: FileRow): FileRecord {
  return {
    ...row,
    id: toNumber(row.id),
    ingestionId: toNumber(row.ingestionId),
    fileSize: toNumber(row.fileSize),
    recordsIngested: toNumberOrNull(row.recordsIngested),
    recordsParsed: toNumberOrNull(row.recordsParsed),
    recordsRejected: toNumberOrNull(row.recordsRejected),
    bytesRead: toNumberOrNull(row.bytesRead),
    runId: toNumberOrNull(row.runId),
    snapshotId: toDecimalOrNull(row.snapshotId),
  };
}

function toVersionRecord(row: FileVersion): FileVersionRecord {
  return {
    ...row,
    fileId: toNumber(row.fileId),
    fileSize: toNumber(row.fileSize),
    runId: toNumberOrNull(row.runId),
    recordsIngested: toNumberOrNull(row.recordsIngested),
    recordsParsed: toNumberOrNull(row.recordsParsed),
    recordsRejected: toNumberOrNull(row.recordsRejected),
    snapshotId: toDecimalOrNull(row.snapshotId),
  };
}

function toAttemptRecord(row: FileAttempt): FileAttemptRecord {
  return {
    ...row,
    id: toNumber(row.id),
    fileId: toNumber(row.fileId),
    recordsIngested: toNumberOrNull(row.recordsIngested),
  };
}

/** How many of an ingestion's files are in each status (every status present, zero when none). */
export async function statusCounts(db: Database, ingestionId: number): Promise<Record<FileStatus, number>> {
  requireId("ingestionId", ingestionId);
  return runOperation("statusCounts", async () => {
    const { rows } = await db.pool.query<{ status: FileStatus; count: number }>(
      `SELECT status, count(*)::int AS count FROM processed_files WHERE ingestion_id = $1 GROUP BY status`,
      [ingestionId],
    );
    const counts = Object.fromEntries(FILE_STATUSES.map((s) => [s, 0])) as Record<FileStatus, number>;
    for (const row of rows) counts[row.status] = row.count;
    return counts;
  });
}

/** Which of an ingestion's files {@link listFiles} returns; every filter given must hold. */
export interface FileFilter {
  /** Only files in this status. */
  status?: FileStatus;
  /** Only files whose current version was registered by this run. */
  runId?: number;
  /** Only files whose record changed at or after this moment (`updated_at`). */
  updatedSince?: Date;
  /** Only files whose path (the full URI, as listed) starts with this text, taken literally. */
  pathPrefix?: string;
  /** At most this many files. Default 100. */
  limit?: number;
  /** Only files with a larger id (paging: the last id of the previous page). */
  afterId?: number;
}

/** An ingestion's files in id order, filtered by {@link FileFilter}; page with `afterId` (default limit 100). */
export async function listFiles(
  db: Database,
  ingestionId: number,
  options: FileFilter = {},
): Promise<FileRecord[]> {
  requireId("ingestionId", ingestionId);
  if (options.status !== undefined) requireOneOf("status", options.status, FILE_STATUSES);
  const limit = requireCount("limit", options.limit ?? 100, 1);
  if (options.afterId !== undefined) requireCount("afterId", options.afterId);
  if (options.runId !== undefined) requireId("runId", options.runId);
  if (options.updatedSince !== undefined && Number.isNaN(options.updatedSince.getTime())) {
    throw new InvalidInputError("updatedSince", "must be a valid date");
  }
  // The ingestion's (ingestion_id, status, id) range of each status wanted, each read in id order as far
  // as the filters let it, merged by id (a Merge Append that stops at `limit`): no index of its own serves
  // "an ingestion's files by id" (issue 11 dropped it to keep a file's row small).
  const statuses = options.status === undefined ? FILE_STATUSES : [options.status];
  const filters = `ingestion_id = $1 AND id > $2
    AND ($4::bigint IS NULL OR run_id = $4) AND ($5::timestamptz IS NULL OR updated_at >= $5)
    AND ($6::text IS NULL OR starts_with(file_path, $6))`;
  const ranges = statuses.map(
    (status) =>
      `(SELECT ${FILE_COLUMNS} FROM processed_files WHERE status = '${status}' AND ${filters} ORDER BY id LIMIT $3)`,
  );
  const sql = `SELECT * FROM (${ranges.join("\nUNION ALL\n")}) AS files ORDER BY id LIMIT $3`;
  return runOperation("listFiles", async () => {
    const { rows } = await db.pool.query<FileRow>(sql, [
      ingestionId,
      options.afterId ?? 0,
      limit,
      options.runId ?? null,
      options.updatedSince ?? null,
      options.pathPrefix || null,
    ]);
    return rows.map(toFileRecord);
  });
}

/** The file with this id, if any. */
export async function getFileById(db: Database, fileId: number): Promise<FileRecord | undefined> {
  requireId("fileId", fileId);
  return runOperation("getFileById", async () => {
    const row = await db.prisma.processedFile.findUnique({ where: { id: BigInt(fileId) } });
    return row ? toFileRecord(row) : undefined;
  });
}

/** The files with these ids, by id (ids that do not exist are left out). */
export async function getFilesByIds(
  db: Database,
  fileIds: readonly number[],
): Promise<Map<number, FileRecord>> {
  fileIds.forEach((id, index) => requireId(`fileIds[${index}]`, id));
  if (fileIds.length === 0) return new Map();
  return runOperation("getFilesByIds", async () => {
    const { rows } = await db.pool.query<FileRow>(
      `SELECT ${FILE_COLUMNS} FROM processed_files WHERE id = ANY($1::bigint[])`,
      [[...new Set(fileIds)]],
    );
    return new Map(rows.map((row) => [toNumber(row.id), toFileRecord(row)]));
  });
}

/**
 * One probe of the unique file_path_key(ingestion_id, file_path) index per wanted path, then the ingestion
 * and the path compared: another path with the same key (a collision, refused when registered) is not this
 * file. Probed one by one: as `= ANY(…)`, a table not yet analyzed was read whole.
 *
 * `ingestion_id + 0` keeps the ingestion out of the planner's choice of index. Named plainly, it lets the
 * planner answer from the ingestion's (ingestion_id, status, id) range instead, hashing every path of it,
 * whenever its statistics say the ingestion is small: a new one, until the table is analyzed again (0.4-2 s
 * a look-up in a bulk submission, against 0.5 ms). Every look-up by path does the same
 * (register-files.ts, reconcile.ts; migration 20261207000000_file_path_key).
 */
const FILES_BY_PATHS_SQL = `SELECT f.* FROM unnest($2::text[]) AS wanted(path)
  CROSS JOIN LATERAL (SELECT ${FILE_COLUMNS} FROM processed_files
                      WHERE file_path_key(ingestion_id, file_path) = file_path_key($1::bigint, wanted.path)
                        AND ingestion_id + 0 = $1 AND file_path = wanted.path
                      LIMIT 1) f`;

/** The files tracked at these paths (full URIs, as listed) for this ingestion, by path; one query. */
export async function getFilesByPaths(
  db: Database,
  ingestionId: number,
  paths: readonly string[],
): Promise<Map<string, FileRecord>> {
  requireId("ingestionId", ingestionId);
  if (paths.length === 0) return new Map();
  return runOperation("getFilesByPaths", async () => {
    const { rows } = await db.pool.query<FileRow>(FILES_BY_PATHS_SQL, [ingestionId, [...new Set(paths)]]);
    return new Map(rows.map((row) => [row.filePath, toFileRecord(row)]));
  });
}

/** The file tracked at this path (a full URI, as listed) for this ingestion, if any. */
export async function getFile(
  db: Database,
  ingestionId: number,
  path: string,
): Promise<FileRecord | undefined> {
  requireId("ingestionId", ingestionId);
  return runOperation("getFile", async () => {
    const { rows } = await db.pool.query<FileRow>(FILES_BY_PATHS_SQL, [ingestionId, [path]]);
    return rows[0] ? toFileRecord(rows[0]) : undefined;
  });
}

/** Every version of a file seen and every attempt at it, oldest first. */
export async function fileHistory(
  db: Database,
  fileId: number,
): Promise<{ versions: FileVersionRecord[]; attempts: FileAttemptRecord[] }> {
  requireId("fileId", fileId);
  return runOperation("fileHistory", async () => {
    const [versions, attempts] = await Promise.all([
      db.prisma.fileVersion.findMany({ where: { fileId: BigInt(fileId) }, orderBy: { version: "asc" } }),
      db.prisma.fileAttempt.findMany({
        where: { fileId: BigInt(fileId) },
        orderBy: [{ version: "asc" }, { attempt: "asc" }],
      }),
    ]);
    return { versions: versions.map(toVersionRecord), attempts: attempts.map(toAttemptRecord) };
  });
}

/**
 * What jobs may claim about their files, read to explain why they could not claim them: each existing file's
 * ingestion, current version and status, by id (ids that do not exist are left out).
 */
export async function fileIdentities(
  db: Database,
  fileIds: readonly number[],
): Promise<Map<number, { ingestionId: number; version: number; status: FileStatus }>> {
  fileIds.forEach((id, index) => requireId(`fileIds[${index}]`, id));
  if (fileIds.length === 0) return new Map();
  return runOperation("fileIdentities", async () => {
    const { rows } = await db.pool.query<{
      id: string;
      ingestion_id: string;
      version: number;
      status: FileStatus;
    }>("SELECT id, ingestion_id, version, status FROM processed_files WHERE id = ANY($1::bigint[])", [
      [...new Set(fileIds)],
    ]);
    return new Map(
      rows.map((row) => [
        Number(row.id),
        { ingestionId: Number(row.ingestion_id), version: row.version, status: row.status },
      ]),
    );
  });
}
