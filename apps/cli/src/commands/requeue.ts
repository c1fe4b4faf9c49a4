import { InvalidInputError } from "@lakeferry/core";
import { getFile, resetFilesForRetry, retryRefusal } from "@lakeferry/db";
import { enqueueFiles, submitFiles } from "@lakeferry/pipeline";
import { ingestJobId } from "@lakeferry/queue";
import { resolveWithinSource } from "@lakeferry/storage";
import { EXIT_INVALID, EXIT_OK } from "../exit-codes.ts";
import { printJson, printLine } from "../output.ts";
import type { CliServices } from "../services.ts";

/**
 * `lakeferry retry NAME [--failed] [--file PATH]`: puts FAILED files back to PENDING and queues them
 * again; with --file, that one file (FAILED or SKIPPED). A SUCCESS file is refused: its rows are in the
 * table already, and writing them again would duplicate them.
 */
export async function retryCommand(
  s: CliServices,
  name: string,
  options: { failed?: boolean; file?: string; json?: boolean },
): Promise<void> {
  const ingestion = await s.ingestion(name);
  const db = await s.db();
  const path =
    options.file === undefined ? undefined : resolveWithinSource(ingestion.sourceUri, options.file);
  if (path !== undefined) {
    const file = await getFile(db, ingestion.id, path);
    if (file === undefined) {
      throw new InvalidInputError("--file", `${path} is not tracked by ingestion ${name}`);
    }
    const refusal = retryRefusal(file.status, { failedOnly: options.failed === true });
    if (refusal)
      throw new InvalidInputError("--file", `${path} is ${file.status}: ${refusal}; nothing to retry`);
  }
  const refs = await resetFilesForRetry(db, ingestion.id, {
    failedOnly: options.failed === true || path === undefined,
    ...(path !== undefined ? { path } : {}),
  });
  const enqueued = await enqueueFiles(await s.ingestQueue(), ingestion, refs);
  if (options.json) {
    printJson({
      reset: refs,
      enqueued,
      jobIds: refs.map((ref) => ingestJobId({ fileId: ref.id, version: ref.version })),
    });
  } else {
    printLine(`queued ${refs.length} file(s) of ${name} again`);
  }
}

/**
 * `lakeferry enqueue NAME PATH…`: hands files to the pipeline directly (what upstream services do).
 * Paths are URIs or paths relative to the ingestion's source; one outside the source is refused. Exit 1
 * when any path was refused (the others are still queued).
 */
export async function enqueueCommand(
  s: CliServices,
  name: string,
  paths: string[],
  options: { json?: boolean },
): Promise<number> {
  await s.ingestion(name);
  const result = await submitFiles(await s.pipeline(), name, paths);
  if (options.json) {
    printJson({ run: result.run.id, accepted: result.accepted, refused: result.refused });
  } else {
    printLine(`run ${result.run.id}: accepted ${result.accepted.length} file(s)`);
  }
  for (const refusal of result.refused) {
    process.stderr.write(`lakeferry: refused ${refusal.path}: ${refusal.reason}\n`);
  }
  return result.refused.length > 0 ? EXIT_INVALID : EXIT_OK;
}
