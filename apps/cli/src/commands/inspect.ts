import { InvalidInputError } from "@lakeferry/core";
import {
  FILE_STATUSES,
  fileHistory,
  getFile,
  listFiles,
  listRuns,
  runReport,
  runSettled,
  statusCounts,
  type FileAttemptRecord,
  type FileStatus,
  type FileVersionRecord,
  type RunErrorType,
  type RunReport,
} from "@lakeferry/db";
import { MAX_RECORDED_REFUSALS } from "@lakeferry/pipeline";
import {
  clipEnd,
  errorText,
  firstLine,
  outputWidth,
  printJson,
  printLine,
  printRecord,
  printTable,
  sourceRelative,
  wrapText,
} from "../output.ts";
import type { CliServices } from "../services.ts";

/** `lakeferry status NAME`: how many files are in each state. */
export async function statusCommand(
  s: CliServices,
  name: string,
  options: { json?: boolean },
): Promise<void> {
  const ingestion = await s.ingestion(name);
  const counts = await statusCounts(await s.db(), ingestion.id);
  if (options.json) {
    printJson(Object.fromEntries(FILE_STATUSES.map((status) => [status, counts[status] ?? 0])));
    return;
  }
  printTable(FILE_STATUSES.map((status) => ({ status, files: counts[status] ?? 0 })));
  // The outage breaker: workers pause the ingest queue while Spark, Postgres or storage is down.
  let pausedMs: number | undefined;
  try {
    pausedMs = await (await s.ingestQueue()).pausedForMs();
  } catch {
    printLine("ingest queue: Redis did not answer (REDIS_URL)");
    return;
  }
  if (pausedMs > 0) {
    printLine(
      `ingest queue: paused by the outage breaker for ${(pausedMs / 1000).toFixed(1)} s more ` +
        "(a dependency is down; see the worker logs)",
    );
  }
}

/** `lakeferry files NAME`: the tracked files, a page at a time; every field with --json. */
export async function filesCommand(
  s: CliServices,
  name: string,
  options: { status?: FileStatus; limit: number; afterId?: number; json?: boolean; full?: boolean },
): Promise<void> {
  const ingestion = await s.ingestion(name);
  // One more than the page, to tell whether another page follows.
  const found = await listFiles(await s.db(), ingestion.id, {
    ...(options.status ? { status: options.status } : {}),
    limit: options.limit + 1,
    ...(options.afterId !== undefined ? { afterId: options.afterId } : {}),
  });
  const files = found.slice(0, options.limit);
  const next = found.length > options.limit ? (files.at(-1)?.id ?? null) : null;
  if (options.json) {
    printJson({ files, next });
    return;
  }
  const full = options.full ?? false;
  printTable(
    files.map((f) => {
      const error = errorText(f.errorType, f.errorMessage, full);
      // A file refused for its bad records says so in its error already.
      const firstBad = f.firstError !== null && error === "" ? firstBadText(f.firstError, full) : "";
      return {
        id: f.id,
        path: full ? f.filePath : sourceRelative(f.filePath, ingestion.sourceUri),
        status: f.status,
        records: f.recordsIngested,
        parsed: f.recordsParsed,
        rejected: f.recordsRejected,
        attempts: f.attempts,
        processed: f.processedAt,
        below: [error && `error: ${error}`, firstBad].filter((line) => line !== "").join("\n"),
      };
    }),
    ["id", "path", "status", "records", "parsed", "rejected", "attempts", "processed"],
    { width: outputWidth(full), shrink: ["path"], below: "below" },
  );
  if (next !== null) {
    const status = options.status ? ` --status ${options.status}` : "";
    printLine(`more files: lakeferry files ${name}${status} --limit ${options.limit} --after-id ${next}`);
  }
}

/** `lakeferry runs NAME`: recent discovery passes and submissions, with how many of their files settled. */
export async function runsCommand(
  s: CliServices,
  name: string,
  options: { limit: number; json?: boolean; full?: boolean },
): Promise<void> {
  const ingestion = await s.ingestion(name);
  const db = await s.db();
  const runs = await listRuns(db, ingestion.id, options.limit);
  const withCounts = await Promise.all(
    runs.map(async (run) => ({ ...run, files: await runSettled(db, run.id) })),
  );
  if (options.json) {
    printJson(withCounts);
    return;
  }
  printTable(
    withCounts.map((r) => {
      const error = errorText(r.errorType, r.errorMessage, options.full);
      return {
        run: r.id,
        trigger: r.trigger,
        status: r.status,
        started: r.startedAt,
        found: r.filesFound,
        new: r.filesNew,
        modified: r.filesModified,
        refused: r.filesRefused,
        settled: `${r.files.settled}/${r.files.total}`,
        failed: r.files.failed,
        error: error && `error: ${error}`,
      };
    }),
    ["run", "trigger", "status", "started", "found", "new", "modified", "refused", "settled", "failed"],
    { width: outputWidth(options.full), below: "error" },
  );
}

/**
 * `lakeferry history NAME PATH`: the file's record, every version seen and every attempt, each as
 * `key: value` lines; errors by their first line unless --full.
 */
export async function historyCommand(
  s: CliServices,
  name: string,
  path: string,
  options: { json?: boolean; full?: boolean },
): Promise<void> {
  const ingestion = await s.ingestion(name);
  // Imported here: @lakeferry/storage loads every cloud SDK (about 0.5 s), which `status` and the other
  // commands of this module do not need.
  const { resolveWithinSource } = await import("@lakeferry/storage");
  const uri = resolveWithinSource(ingestion.sourceUri, path);
  const db = await s.db();
  const file = await getFile(db, ingestion.id, uri);
  if (file === undefined) {
    throw new InvalidInputError(
      "PATH",
      `${uri} is not tracked by ingestion ${name} (see \`lakeferry files ${name}\`)`,
    );
  }
  const history = await fileHistory(db, file.id);
  if (options.json) {
    printJson({ file, ...history });
    return;
  }
  const full = options.full ?? false;
  const width = outputWidth(full);
  printRecord(
    {
      file: file.filePath,
      id: file.id,
      status: file.status,
      version: file.version,
      attempts: file.attempts,
      records: file.recordsIngested,
      parsed: file.recordsParsed,
      rejected: file.recordsRejected,
      "first bad record": file.firstError === null ? null : firstBadText(file.firstError, full, ""),
      processed: file.processedAt,
      snapshot: file.snapshotId,
      error: errorText(file.errorType, file.errorMessage, full),
    },
    { width },
  );
  for (const version of history.versions) {
    printLine(`\nversion ${version.version}`);
    printRecord(versionFields(version, full), { width, indent: "  " });
  }
  for (const attempt of history.attempts) {
    printLine(`\nattempt ${attempt.attempt} of version ${attempt.version}`);
    printRecord(attemptFields(attempt, full), { width, indent: "  " });
  }
  const messages = [file, ...history.versions, ...history.attempts].map((record) => record.errorMessage);
  if (!full && messages.some(isCut)) printLine("\n(errors cut to their first line; --full shows them whole)");
}

function versionFields(version: FileVersionRecord, full: boolean): Record<string, unknown> {
  return {
    status: version.status,
    seen: version.seenAt,
    run: version.runId,
    etag: version.etag,
    size: `${version.fileSize} bytes`,
    modified: version.modifiedAt,
    records: version.recordsIngested,
    parsed: version.recordsParsed,
    rejected: version.recordsRejected,
    "first bad record": version.firstError === null ? null : firstBadText(version.firstError, full, ""),
    snapshot: version.snapshotId,
    batch: version.batchId,
    processed: version.processedAt,
    error: errorText(version.errorType, version.errorMessage, full),
  };
}

function attemptFields(attempt: FileAttemptRecord, full: boolean): Record<string, unknown> {
  return {
    outcome: attempt.outcome ?? "in flight",
    worker: attempt.worker,
    started: attempt.startedAt,
    finished: attempt.finishedAt,
    duration: attempt.durationMs === null ? null : `${attempt.durationMs} ms`,
    records: attempt.recordsIngested,
    batch: attempt.batchId,
    error: errorText(attempt.errorType, attempt.errorMessage, full),
  };
}

/**
 * A file's first bad record (`record 3: malformed JSON: {"id":3,`), its text cut to its first line and 120
 * characters unless `full`.
 */
function firstBadText(firstError: string, full: boolean, prefix = "first bad record: "): string {
  const line = full ? firstError : (firstError.split("\n")[0] ?? "");
  return `${prefix}${!full && line.length > 120 ? `${line.slice(0, 119)}…` : line}`;
}

/** Whether showing a message by its first line leaves lines out. */
function isCut(message: string | null): boolean {
  return message !== null && message.trim().includes("\n");
}

/**
 * `lakeferry report RUN_ID`: how a run went, the seed design's error-recovery report: its files by fate,
 * and its FAILED files by error type, each type with what to do.
 */
export async function reportCommand(
  s: CliServices,
  runId: number,
  options: { limit: number; json?: boolean; full?: boolean },
): Promise<void> {
  const report = await runReport(await s.db(), runId, { failureLimit: options.limit });
  if (report === undefined) {
    throw new InvalidInputError(
      "RUN_ID",
      `no run with id ${runId} (\`lakeferry runs NAME\` lists an ingestion's runs)`,
    );
  }
  if (options.json) {
    printJson(report);
    return;
  }
  const width = outputWidth(options.full);
  const { run, totals } = report;
  printRecord(
    {
      run: `${run.id} of ${report.ingestion.name} (${run.trigger}, ${run.status})`,
      started: run.startedAt,
      discovered: run.finishedAt,
      error: errorText(run.errorType, run.errorMessage, options.full),
      files:
        `${totals.files}: ${totals.success} SUCCESS, ${totals.failed} FAILED, ${totals.skipped} SKIPPED, ` +
        `${totals.pending} pending`,
      records: totals.records,
    },
    { width },
  );
  for (const type of report.errorTypes) printErrorType(report, type, width);
  if (report.failures.length < totals.failed) {
    const more = totals.failed - report.failures.length;
    printLine(`\n${more} more FAILED file(s): lakeferry report ${run.id} --limit ${totals.failed}`);
  }
  if (run.filesRefused > 0) {
    printLine(`\n${run.filesRefused} path(s) not registered (refused, hidden or deferred):`);
    for (const refusal of report.refused) printLine(clipEnd(`  ${refusal.path}: ${refusal.reason}`, width));
    if (report.refused.length < run.filesRefused) {
      const capped =
        run.filesRefused > MAX_RECORDED_REFUSALS ? " (a discovery pass records the first 1,000)" : "";
      printLine(`  … lakeferry report ${run.id} --limit ${run.filesRefused} lists them all${capped}`);
    }
  }
}

/** One error type of a report: how many files, what to do, and its listed files. */
function printErrorType(report: RunReport, type: RunErrorType, width: number): void {
  const kind = type.kind.replace(/_/g, " ");
  printLine("");
  printLine(clipEnd(`${type.errorType ?? "(no error type)"}: ${type.files} file(s), ${kind}`, width));
  for (const line of wrapText(type.action, width, "  what to do: ", " ".repeat(14))) printLine(line);
  for (const file of report.failures) {
    if (file.errorType !== type.errorType || file.kind !== type.kind) continue;
    const path = width === Infinity ? file.path : sourceRelative(file.path, report.ingestion.sourceUri);
    printLine(clipEnd(`  ${path} (${file.attempts} attempt(s)): ${firstLine(file.error)}`, width));
  }
}
