import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import { requireId, requireText, toNumberOrNull } from "./values.ts";

/** The answer recorded for a path submission that carried a request id. */
export interface SubmissionRequestRecord {
  ingestionId: number;
  requestId: string;
  /** Identifies the request's content (the API hashes its paths): the same id with another hash is a reuse. */
  requestHash: string;
  /** The upstream run that registered the accepted files; null once that run is deleted. */
  runId: number | null;
  /** The answer given (HTTP status and body, as the API chose to record it). */
  response: unknown;
  createdAt: Date;
}

interface SubmissionRequestRow {
  ingestionId: string;
  requestId: string;
  requestHash: string;
  runId: string | null;
  response: unknown;
  createdAt: Date;
}

const COLUMNS = `ingestion_id AS "ingestionId", request_id AS "requestId", request_hash AS "requestHash",
  run_id AS "runId", response, created_at AS "createdAt"`;

function toRecord(row: SubmissionRequestRow): SubmissionRequestRecord {
  return {
    ingestionId: Number(row.ingestionId),
    requestId: row.requestId,
    requestHash: row.requestHash,
    runId: toNumberOrNull(row.runId),
    response: row.response,
    createdAt: row.createdAt,
  };
}

/** The submission recorded under this request id for this ingestion, if any. */
export async function findSubmissionRequest(
  db: Database,
  ingestionId: number,
  requestId: string,
): Promise<SubmissionRequestRecord | undefined> {
  requireId("ingestionId", ingestionId);
  requireText("requestId", requestId);
  return runOperation("findSubmissionRequest", async () => {
    const { rows } = await db.pool.query<SubmissionRequestRow>(
      `SELECT ${COLUMNS} FROM submission_requests WHERE ingestion_id = $1 AND request_id = $2`,
      [ingestionId, requestId],
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  });
}

/**
 * Records the answer to a submission under its request id, unless one is recorded already (two copies of a
 * request racing): returns the record that stands, the one given or the earlier one.
 */
export async function recordSubmissionRequest(
  db: Database,
  record: Omit<SubmissionRequestRecord, "createdAt">,
): Promise<SubmissionRequestRecord> {
  requireId("ingestionId", record.ingestionId);
  requireText("requestId", record.requestId);
  requireText("requestHash", record.requestHash);
  if (record.runId !== null) requireId("runId", record.runId);
  const inserted = await runOperation("recordSubmissionRequest", async () => {
    const { rows } = await db.pool.query<SubmissionRequestRow>(
      `INSERT INTO submission_requests (ingestion_id, request_id, request_hash, run_id, response)
       VALUES ($1, $2, $3, $4, $5::jsonb)
       ON CONFLICT (ingestion_id, request_id) DO NOTHING
       RETURNING ${COLUMNS}`,
      [
        record.ingestionId,
        record.requestId,
        record.requestHash,
        record.runId,
        JSON.stringify(record.response),
      ],
    );
    return rows[0] ? toRecord(rows[0]) : undefined;
  });
  return inserted ?? (await findSubmissionRequest(db, record.ingestionId, record.requestId))!;
}
