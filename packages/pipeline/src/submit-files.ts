import { errorMessage, InvalidInputError, LakeferryError, outageOf } from "@lakeferry/core";
import {
  finishRun,
  getFilesByPaths,
  getIngestion,
  registerFiles,
  startRun,
  type FileRef,
  type ListedFile,
  type Run,
} from "@lakeferry/db";
import { compileGlob, createObjectStore, parseStorageUri, resolveWithinSource } from "@lakeferry/storage";
import { enqueueFiles } from "./enqueue-files.ts";
import type { PipelineContext } from "./pipeline-context.ts";
import { storeOptionsFor } from "./store-credentials.ts";

/** Objects looked up at once while checking submitted paths. */
const STAT_CONCURRENCY = 16;

/** What became of a submission. */
export interface Submission {
  /** The upstream run that registered the accepted files. */
  run: Run;
  /** Files taking the same road as discovered ones (already known, unchanged files included). */
  accepted: FileRef[];
  /** Paths refused, each with a reason that says what to fix. */
  refused: { path: string; reason: string }[];
}

/**
 * Upstream enqueueing: the producer function upstream services call with paths that just landed. Each path
 * (a URI or a path relative to the source) must lie inside the ingestion's source, match its pattern and
 * exist; accepted files are registered (trigger `upstream`) and enqueued exactly like discovered ones, so
 * submitting a path twice, or a path discovery also finds, makes one job and one write.
 *
 * @throws InvalidInputError when the ingestion does not exist or no path is given.
 */
export async function submitFiles(
  ctx: PipelineContext,
  ingestionName: string,
  paths: string[],
): Promise<Submission> {
  const ingestion = await getIngestion(ctx.db, ingestionName);
  if (!ingestion) {
    throw new InvalidInputError("ingestion", `no ingestion is named ${JSON.stringify(ingestionName)}`);
  }
  if (paths.length === 0) throw new InvalidInputError("paths", "give at least one path to enqueue");

  const refused: Submission["refused"] = [];
  const wanted = new Map<string, string>(); // canonical URI → the path as given (first spelling)
  const matches = ingestion.glob ? compileGlob(ingestion.glob) : undefined;
  const source = parseStorageUri(ingestion.sourceUri);
  const base = source.prefix === "" || source.prefix.endsWith("/") ? source.prefix : `${source.prefix}/`;
  for (const path of paths) {
    let uri: string;
    try {
      uri = resolveWithinSource(ingestion.sourceUri, path);
    } catch (err) {
      refused.push({ path, reason: reasonOf(err) });
      continue;
    }
    const relative = parseStorageUri(uri).prefix.slice(base.length);
    if (matches && !matches(relative)) {
      refused.push({
        path,
        reason: `does not match the ingestion's pattern ${JSON.stringify(ingestion.glob)}`,
      });
      continue;
    }
    if (!wanted.has(uri)) wanted.set(uri, path);
  }

  // Set up before the run starts, so a store that cannot be (an unresolvable credential reference)
  // throws without leaving a run open.
  const store = createObjectStore(
    ingestion.sourceUri,
    await storeOptionsFor(ingestion, ctx.storeOptions?.(ingestion.sourceUri)),
  );
  const run = await startRun(ctx.db, { ingestionId: ingestion.id, trigger: "upstream" }).catch(
    async (err: unknown) => {
      await store.close().catch(() => {});
      throw err;
    },
  );
  const listed: ListedFile[] = [];
  // Storage down or throttling is no reason to refuse a path: the submission fails as a whole, retryable
  // (the queue's breaker, the API's 503), and its run says why.
  let outage: Error | undefined;
  try {
    const entries = [...wanted];
    let next = 0;
    const statOne = async (): Promise<void> => {
      while (next < entries.length && outage === undefined) {
        const [uri, path] = entries[next++] as [string, string];
        try {
          const info = await store.stat(parseStorageUri(uri).prefix);
          if (info)
            listed.push({ uri: info.uri, size: info.size, etag: info.etag, modifiedAt: info.modifiedAt });
          else refused.push({ path, reason: `no such object: ${uri}` });
        } catch (err) {
          if (outageOf(err) !== undefined && err instanceof Error) outage ??= err;
          else refused.push({ path, reason: reasonOf(err) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(STAT_CONCURRENCY, entries.length) }, statOne));
  } finally {
    await store.close().catch(() => {});
  }
  if (outage !== undefined) {
    await finishRun(ctx.db, run.id, {
      filesFound: 0,
      filesNew: 0,
      filesModified: 0,
      error: {
        type: outage instanceof LakeferryError ? outage.code : "Error",
        message: errorMessage(outage),
      },
    }).catch(() => {});
    throw outage;
  }

  const accepted: FileRef[] = [];
  let created: FileRef[] = [];
  let modified: FileRef[] = [];
  try {
    if (listed.length > 0) {
      ({ created, modified } = await registerFiles(ctx.db, {
        ingestionId: ingestion.id,
        runId: run.id,
        files: listed,
        modifiedPolicy: ingestion.modifiedPolicy,
      }));
    }
    accepted.push(...created, ...modified);
    const fresh = new Set(accepted.map((file) => file.path));
    // Files already known and unchanged keep their state; one still PENDING may have lost its job, and
    // enqueueing it again is harmless (same job id).
    const again: FileRef[] = [];
    const known = await getFilesByPaths(
      ctx.db,
      ingestion.id,
      listed.filter((file) => !fresh.has(file.uri)).map((file) => file.uri),
    );
    for (const file of known.values()) {
      const ref = { id: file.id, version: file.version, path: file.filePath };
      accepted.push(ref);
      if (file.status === "PENDING") again.push(ref);
    }
    await enqueueFiles(ctx.queue, ingestion, [...created, ...modified, ...again]);
  } catch (err) {
    await finishRun(ctx.db, run.id, {
      filesFound: listed.length,
      filesNew: created.length,
      filesModified: modified.length,
      refused,
      error: { type: err instanceof LakeferryError ? err.code : "Error", message: errorMessage(err) },
    }).catch(() => {});
    throw err;
  }
  const finished = await finishRun(ctx.db, run.id, {
    filesFound: listed.length,
    filesNew: created.length,
    filesModified: modified.length,
    refused,
  });
  ctx.logger.info(
    { ingestion: ingestion.name, runId: run.id, accepted: accepted.length, refused: refused.length },
    "files submitted",
  );
  return { run: finished, accepted, refused };
}

function reasonOf(err: unknown): string {
  if (err instanceof InvalidInputError) return err.message.slice(err.field.length + 2);
  return errorMessage(err);
}
