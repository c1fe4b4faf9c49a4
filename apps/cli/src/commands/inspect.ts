import { InvalidInputError } from "@lakeferry/core";
import {
  FILE_STATUSES,
  fileHistory,
  getFile,
  listFiles,
  listRuns,
  runSettled,
  statusCounts,
  type FileStatus,
} from "@lakeferry/db";
import { printJson, printLine, printTable } from "../output.ts";
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

/** `lakeferry files NAME`: the tracked files, every field with --json. */
export async function filesCommand(
  s: CliServices,
  name: string,
  options: { status?: FileStatus; limit: number; afterId?: number; json?: boolean },
): Promise<void> {
  const ingestion = await s.ingestion(name);
  const files = await listFiles(await s.db(), ingestion.id, {
    ...(options.status ? { status: options.status } : {}),
    limit: options.limit,
    ...(options.afterId !== undefined ? { afterId: options.afterId } : {}),
  });
  if (options.json) {
    printJson(files);
    return;
  }
  printTable(
    files.map((f) => ({
      id: f.id,
      path: f.filePath,
      status: f.status,
      records: f.recordsIngested,
      attempts: f.attempts,
      processed: f.processedAt,
      error: f.errorType ? `${f.errorType}: ${f.errorMessage ?? ""}`.slice(0, 120) : "",
    })),
    ["id", "path", "status", "records", "attempts", "processed", "error"],
  );
}

/** `lakeferry runs NAME`: recent discovery passes and submissions, with how many of their files settled. */
export async function runsCommand(
  s: CliServices,
  name: string,
  options: { limit: number; json?: boolean },
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
    withCounts.map((r) => ({
      run: r.id,
      trigger: r.trigger,
      status: r.status,
      started: r.startedAt,
      found: r.filesFound,
      new: r.filesNew,
      modified: r.filesModified,
      settled: `${r.files.settled}/${r.files.total}`,
      failed: r.files.failed,
      error: r.errorType ? `${r.errorType}: ${r.errorMessage ?? ""}`.slice(0, 120) : "",
    })),
  );
}

/** `lakeferry history NAME PATH`: the file's record, every version seen and every attempt. */
export async function historyCommand(
  s: CliServices,
  name: string,
  path: string,
  options: { json?: boolean },
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
  printLine(`${file.filePath}: ${file.status}, version ${file.version}, ${file.attempts} attempt(s)`);
  printLine("\nversions:");
  printTable(history.versions as unknown as Record<string, unknown>[]);
  printLine("\nattempts:");
  printTable(history.attempts as unknown as Record<string, unknown>[]);
}
