import { InvalidInputError } from "@lakeferry/core";
import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import { IGNORED_CHANGE } from "./register-files.ts";
import type { Run, RunStatus, RunTrigger } from "./types.ts";
import { RUN_TRIGGERS } from "./types.ts";
import { requireCount, requireId, requireOneOf, requireText, toNumber } from "./values.ts";

interface RunRow {
  id: bigint | string;
  ingestionId: bigint | string;
  trigger: string;
  status: string;
  startedAt: Date;
  finishedAt: Date | null;
  filesFound: number;
  filesNew: number;
  filesModified: number;
  filesRefused: number;
  errorType: string | null;
  errorMessage: string | null;
}

function toRun(row: RunRow): Run {
  return {
    id: toNumber(row.id),
    ingestionId: toNumber(row.ingestionId),
    trigger: row.trigger as RunTrigger,
    status: row.status as RunStatus,
    startedAt: row.startedAt,
    finishedAt: row.finishedAt,
    filesFound: row.filesFound,
    filesNew: row.filesNew,
    filesModified: row.filesModified,
    filesRefused: row.filesRefused,
    errorType: row.errorType,
    errorMessage: row.errorMessage,
  };
}

const RUN_COLUMNS = `id, ingestion_id AS "ingestionId", trigger, status, started_at AS "startedAt",
  finished_at AS "finishedAt", files_found AS "filesFound", files_new AS "filesNew",
  files_modified AS "filesModified", files_refused AS "filesRefused", error_type AS "errorType", error_message AS "errorMessage"`;

/** Records the start of a discovery run (status `running`). */
export async function startRun(
  db: Database,
  input: { ingestionId: number; trigger: RunTrigger },
): Promise<Run> {
  requireId("ingestionId", input.ingestionId);
  requireOneOf("trigger", input.trigger, RUN_TRIGGERS);
  return runOperation("startRun", async () => {
    const { rows } = await db.pool.query<RunRow>(
      `INSERT INTO runs (ingestion_id, trigger) VALUES ($1, $2::run_trigger) RETURNING ${RUN_COLUMNS}`,
      [input.ingestionId, input.trigger],
    );
    return toRun(rows[0]!);
  });
}

/**
 * Records a run's end: `succeeded`, or `failed` with the error's type and message; with `refused`, the
 * submitted paths it did not register and why (kept in `run_refusals`, counted in `files_refused`).
 *
 * @throws InvalidInputError when no run has this id.
 */
export async function finishRun(
  db: Database,
  runId: number,
  result: {
    filesFound: number;
    filesNew: number;
    filesModified: number;
    refused?: readonly Refusal[];
    /** Refused paths not listed in `refused` (only counted in `files_refused`). */
    refusedUnrecorded?: number;
    error?: { type: string; message: string };
  },
): Promise<Run> {
  requireId("runId", runId);
  requireCount("filesFound", result.filesFound);
  requireCount("filesNew", result.filesNew);
  requireCount("filesModified", result.filesModified);
  if (result.error) requireText("error.type", result.error.type);
  const unrecorded = requireCount("refusedUnrecorded", result.refusedUnrecorded ?? 0);
  const refused = result.refused ?? [];
  return runOperation("finishRun", async () => {
    // One statement: the refusals (a path named twice is kept once) and the run's end land together.
    const { rows } = await db.pool.query<RunRow>(
      `WITH refusals AS (
         INSERT INTO run_refusals (run_id, path, reason)
         SELECT $1, r.path, r.reason FROM unnest($8::text[], $9::text[]) AS r(path, reason)
         ON CONFLICT (run_id, md5(path)) DO NOTHING
         RETURNING 1
       )
       UPDATE runs SET status = $2::run_status, finished_at = now(), files_found = $3, files_new = $4,
         files_modified = $5, error_type = $6, error_message = $7,
         files_refused = files_refused + (SELECT count(*) FROM refusals) + $10
       WHERE id = $1 RETURNING ${RUN_COLUMNS}`,
      [
        runId,
        result.error ? "failed" : "succeeded",
        result.filesFound,
        result.filesNew,
        result.filesModified,
        result.error?.type ?? null,
        result.error?.message ?? null,
        refused.map((r) => r.path),
        refused.map((r) => r.reason),
        unrecorded,
      ],
    );
    const row = rows[0];
    if (!row) throw new InvalidInputError("runId", `no run with id ${runId}`);
    return toRun(row);
  });
}

/** A submitted path a run did not register, and why. */
export interface Refusal {
  path: string;
  reason: string;
}

/** The paths a run refused (see {@link finishRun}), in path order, at most `limit` (default 1,000). */
export async function listRefusals(db: Database, runId: number, limit = 1_000): Promise<Refusal[]> {
  requireId("runId", runId);
  requireCount("limit", limit, 1);
  return runOperation("listRefusals", async () => {
    const { rows } = await db.pool.query<Refusal>(
      `SELECT path, reason FROM run_refusals WHERE run_id = $1 ORDER BY path LIMIT $2`,
      [runId, limit],
    );
    return rows;
  });
}

/** The run with this id, if any. */
export async function getRun(db: Database, runId: number): Promise<Run | undefined> {
  requireId("runId", runId);
  return runOperation("getRun", async () => {
    const { rows } = await db.pool.query<RunRow>(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = $1`, [runId]);
    return rows[0] ? toRun(rows[0]) : undefined;
  });
}

/** An ingestion's runs, newest first (default 20). */
export async function listRuns(db: Database, ingestionId: number, limit = 20): Promise<Run[]> {
  requireId("ingestionId", ingestionId);
  requireCount("limit", limit, 1);
  return runOperation("listRuns", async () => {
    const rows = await db.prisma.run.findMany({
      where: { ingestionId: BigInt(ingestionId) },
      orderBy: { id: "desc" },
      take: limit,
    });
    return rows.map(toRun);
  });
}

/**
 * How far the files a run registered (new files and new versions of modified ones) have got: `settled`
 * counts versions that reached SUCCESS, FAILED or SKIPPED (a version superseded before processing is
 * SKIPPED); `failed` counts FAILED ones. Changes recorded only as history under the `ignore` policy do
 * not count. The run is done when `settled === total`.
 */
export async function runSettled(
  db: Database,
  runId: number,
): Promise<{ total: number; settled: number; failed: number }> {
  requireId("runId", runId);
  return runOperation("runSettled", async () => {
    const { rows } = await db.pool.query<{ total: number; settled: number; failed: number }>(
      `SELECT count(*)::int AS total,
              count(*) FILTER (WHERE status IN ('SUCCESS', 'FAILED', 'SKIPPED'))::int AS settled,
              count(*) FILTER (WHERE status = 'FAILED')::int AS failed
       FROM file_versions
       WHERE run_id = $1 AND error_type IS DISTINCT FROM '${IGNORED_CHANGE}'`,
      [runId],
    );
    return rows[0]!;
  });
}
