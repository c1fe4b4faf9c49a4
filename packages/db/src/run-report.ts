import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import {
  BAD_RECORDS,
  FILE_TOO_LARGE,
  failureAction,
  failureKind,
  OUT_OF_MEMORY_MESSAGE,
  type FailureKind,
} from "./failure-kind.ts";
import { getIngestionById } from "./ingestions.ts";
import { IGNORED_CHANGE } from "./register-files.ts";
import { getRun, listRefusals, type Refusal } from "./runs.ts";
import type { Run } from "./types.ts";
import { requireCount, requireId, toNumber } from "./values.ts";

/**
 * How a run went, file by file: the seed design's error-recovery report. The run's files are the file
 * versions it registered (new files and new versions of modified ones; changes the `ignore` policy only
 * recorded do not count), as {@link runSettled} counts them.
 */
export interface RunReport {
  run: Run;
  ingestion: { id: number; name: string; sourceUri: string };
  totals: {
    files: number;
    success: number;
    failed: number;
    /** Ignored or superseded before they were processed. */
    skipped: number;
    /** Not settled yet: waiting for a worker, being written, or waiting to be retried. */
    pending: number;
    /** Rows the SUCCESS files put in the table. */
    records: number;
  };
  /**
   * The FAILED files grouped by error type (and kind), most files first, each with what to do; files
   * SKIPPED for a reason the operator can act on ({@link FILE_TOO_LARGE}, {@link BAD_RECORDS}) are grouped here too.
   */
  errorTypes: RunErrorType[];
  /** FAILED files in id order, at most `failureLimit` of them (`totals.failed` counts them all). */
  failures: RunFailure[];
  /**
   * Submitted paths the run did not register, with the reason, at most `failureLimit` of them
   * (`run.filesRefused` counts them all).
   */
  refused: Refusal[];
}

/** One error type among a run's FAILED files. */
export interface RunErrorType {
  /** Spark's error class or lakeferry's error code, as recorded; null when none was. */
  errorType: string | null;
  kind: FailureKind;
  files: number;
  /** What to do about these files, naming the commands to run. */
  action: string;
}

/** A FAILED file of a run. */
export interface RunFailure {
  fileId: number;
  /** The file's URI. */
  path: string;
  version: number;
  errorType: string | null;
  /**
   * The first line of the error message that has any, at most 2,000 characters (`fileHistory` has the
   * whole message).
   */
  error: string;
  kind: FailureKind;
  /** Claims of this version, counted against its attempts or not (an outage spends none). */
  attempts: number;
}

const TOTALS_SQL = `
SELECT count(*)::int AS files,
       count(*) FILTER (WHERE status = 'SUCCESS')::int AS success,
       count(*) FILTER (WHERE status = 'FAILED')::int AS failed,
       count(*) FILTER (WHERE status = 'SKIPPED')::int AS skipped,
       count(*) FILTER (WHERE status IN ('PENDING', 'PROCESSING'))::int AS pending,
       coalesce(sum(records_ingested) FILTER (WHERE status = 'SUCCESS'), 0)::text AS records
FROM file_versions
WHERE run_id = $1 AND error_type IS DISTINCT FROM '${IGNORED_CHANGE}'`;

const ERROR_TYPES_SQL = `
SELECT error_type, coalesce(error_message ~ $2, false) AS out_of_memory, count(*)::int AS files
FROM file_versions
WHERE run_id = $1 AND (status = 'FAILED' OR (status = 'SKIPPED' AND error_type IN ('${FILE_TOO_LARGE}', '${BAD_RECORDS}')))
GROUP BY 1, 2`;

/** How much of an error's first line the report keeps (a single-line message can be very long). */
const MAX_ERROR_CHARS = 2000;

const FAILURES_SQL = `
SELECT fv.file_id, pf.file_path, fv.version, fv.error_type,
       left(substring(fv.error_message FROM '\\S[^\\n]*'), ${MAX_ERROR_CHARS}) AS error,
       coalesce(fv.error_message ~ $3, false) AS out_of_memory,
       (SELECT count(*)::int FROM file_attempts fa
        WHERE fa.file_id = fv.file_id AND fa.version = fv.version) AS attempts
FROM file_versions fv JOIN processed_files pf ON pf.id = fv.file_id
WHERE fv.run_id = $1 AND fv.status = 'FAILED'
ORDER BY fv.file_id
LIMIT $2`;

/**
 * The error-recovery report of the run with this id, listing at most `failureLimit` FAILED files
 * (default 1000); undefined when there is no such run.
 */
export async function runReport(
  db: Database,
  runId: number,
  options: { failureLimit?: number } = {},
): Promise<RunReport | undefined> {
  requireId("runId", runId);
  const failureLimit = requireCount("failureLimit", options.failureLimit ?? 1000);
  const run = await getRun(db, runId);
  if (run === undefined) return undefined;
  const ingestion = await getIngestionById(db, run.ingestionId);
  // A run's ingestion is deleted with it (ON DELETE CASCADE): only a concurrent delete gets here.
  if (ingestion === undefined) return undefined;
  const [totals, errorTypes, failures, refused] = await Promise.all([
    runTotals(db, runId),
    runErrorTypes(db, runId, ingestion.name),
    runFailures(db, runId, failureLimit),
    run.filesRefused > 0 && failureLimit > 0 ? listRefusals(db, runId, failureLimit) : [],
  ]);
  return {
    run,
    ingestion: { id: ingestion.id, name: ingestion.name, sourceUri: ingestion.sourceUri },
    totals,
    errorTypes,
    failures,
    refused,
  };
}

async function runTotals(db: Database, runId: number): Promise<RunReport["totals"]> {
  return runOperation("runReport.totals", async () => {
    const { rows } = await db.pool.query<Omit<RunReport["totals"], "records"> & { records: string }>(
      TOTALS_SQL,
      [runId],
    );
    const row = rows[0]!;
    return { ...row, records: toNumber(row.records) };
  });
}

async function runErrorTypes(db: Database, runId: number, ingestion: string): Promise<RunErrorType[]> {
  return runOperation("runReport.errorTypes", async () => {
    const { rows } = await db.pool.query<{
      error_type: string | null;
      out_of_memory: boolean;
      files: number;
    }>(ERROR_TYPES_SQL, [runId, OUT_OF_MEMORY_MESSAGE]);
    return rows
      .map((row): RunErrorType => {
        const kind = failureKind(row.error_type, row.out_of_memory);
        return { errorType: row.error_type, kind, files: row.files, action: failureAction(kind, ingestion) };
      })
      .sort((a, b) => b.files - a.files || (a.errorType ?? "").localeCompare(b.errorType ?? ""));
  });
}

async function runFailures(db: Database, runId: number, limit: number): Promise<RunFailure[]> {
  if (limit === 0) return [];
  return runOperation("runReport.failures", async () => {
    const { rows } = await db.pool.query<{
      file_id: string;
      file_path: string;
      version: number;
      error_type: string | null;
      error: string | null;
      out_of_memory: boolean;
      attempts: number;
    }>(FAILURES_SQL, [runId, limit, OUT_OF_MEMORY_MESSAGE]);
    return rows.map((row) => ({
      fileId: toNumber(row.file_id),
      path: row.file_path,
      version: row.version,
      errorType: row.error_type,
      error: (row.error ?? "").trim(),
      kind: failureKind(row.error_type, row.out_of_memory),
      attempts: row.attempts,
    }));
  });
}
