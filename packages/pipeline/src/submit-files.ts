import { errorMessage, InvalidInputError, LakeferryError, outageOf } from "@lakeferry/core";
import {
  finishRun,
  getFilesByPaths,
  getIngestion,
  registerFiles,
  startRun,
  type FileRef,
  type FileStatus,
  type Ingestion,
  type KnownFile,
  type ListedFile,
  type Run,
} from "@lakeferry/db";
import {
  compileGlob,
  createObjectStore,
  isCopyInProgress,
  isHiddenKey,
  withinSource,
  type ObjectStore,
  type ResolvedPath,
} from "@lakeferry/storage";
import { enqueueFiles } from "./enqueue-files.ts";
import type { PipelineContext } from "./pipeline-context.ts";
import { COPY_IN_PROGRESS_REASON, HIDDEN_NAME_REASON, readSourceSettings } from "./source-settings.ts";
import { storeOptionsFor } from "./store-credentials.ts";

/** Objects looked up at once while checking submitted paths. */
const STAT_CONCURRENCY = 16;

/** A file a submission accepted: registered by it, or known before. */
export interface AcceptedFile extends FileRef {
  /**
   * The file's status when it was known before this submission (unchanged by it), as of its registration
   * step; undefined when this submission registered it (a new file or a new version).
   */
  knownStatus?: FileStatus;
}

/** What became of a submission. */
export interface Submission {
  /** The upstream run that registered the accepted files. */
  run: Run;
  /** Files taking the same road as discovered ones (already known, unchanged files included). */
  accepted: AcceptedFile[];
  /** Paths refused, each with a reason that says what to fix. */
  refused: { path: string; reason: string }[];
  /** The object URI of each path as given that lies inside the source (several spellings may share one). */
  uris: Map<string, string>;
}

/** Milliseconds a submission spent in each step, as its `files submitted` log line gives them. */
interface SubmitTimings {
  check: number;
  stat: number;
  register: number;
  enqueue: number;
}

/**
 * Upstream enqueueing: the producer function upstream services call with paths that just landed. Each path
 * (a URI or a path relative to the source) must lie inside the ingestion's source, match its pattern, have
 * no hidden name (a segment starting with `_` or `.`) unless `listing.includeHidden`, and exist; a
 * submitted file is taken as complete (`listing.minAgeMs` applies to discovery only); accepted files are
 * registered (trigger `upstream`) and enqueued exactly like discovered ones, so
 * submitting a path twice, or a path discovery also finds, makes one job and one write.
 *
 * An abort (`signal`: the process is stopping) ends the submission between steps with its run finished as
 * interrupted; what it registered is PENDING and queued, or re-queued by the reconciler.
 *
 * @throws InvalidInputError when the ingestion does not exist or no path is given.
 */
export async function submitFiles(
  ctx: PipelineContext,
  ingestionName: string,
  paths: string[],
  options: { signal?: AbortSignal } = {},
): Promise<Submission> {
  const { signal } = options;
  const ingestion = await getIngestion(ctx.db, ingestionName);
  if (!ingestion) {
    throw new InvalidInputError("ingestion", `no ingestion is named ${JSON.stringify(ingestionName)}`);
  }
  if (paths.length === 0) throw new InvalidInputError("paths", "give at least one path to enqueue");
  const ms: SubmitTimings = { check: 0, stat: 0, register: 0, enqueue: 0 };
  let mark = performance.now();
  const lap = (step: keyof SubmitTimings): void => {
    const now = performance.now();
    ms[step] = Math.round(now - mark);
    mark = now;
  };

  const { refused, uris, wanted } = checkPaths(ingestion, paths);
  lap("check");
  // Set up before the run starts, so a store that cannot be (an unresolvable credential reference)
  // throws without leaving a run open.
  const store = createObjectStore(
    ingestion.sourceUri,
    await storeOptionsFor(ingestion, ctx.storeOptions?.(ingestion.sourceUri)),
  );
  let run: Run;
  try {
    signal?.throwIfAborted();
    run = await startRun(ctx.db, { ingestionId: ingestion.id, trigger: "upstream" });
  } catch (err) {
    await store.close().catch(() => {});
    throw err;
  }
  let listed: ListedFile[];
  try {
    listed = await statWanted(store, wanted, refused, signal);
  } catch (err) {
    // Storage down or throttling is no reason to refuse a path: the submission fails as a whole,
    // retryable (the queue's breaker, the API's 503), and its run says why.
    // The paths refused so far (by the checks, or as missing) are on the run all the same.
    await finishFailed(ctx, run, { filesFound: 0, filesNew: 0, filesModified: 0 }, err, signal, refused);
    throw err;
  } finally {
    await store.close().catch(() => {});
  }
  lap("stat");

  const accepted: AcceptedFile[] = [];
  let created: FileRef[] = [];
  let modified: FileRef[] = [];
  try {
    signal?.throwIfAborted();
    // Files already known and unchanged keep their state; one still PENDING may have lost its job, and
    // enqueueing it again is harmless (same job id).
    const again: FileRef[] = [];
    const keep = (file: KnownFile) => {
      const ref = { id: file.id, version: file.version, path: file.path };
      accepted.push({ ...ref, knownStatus: file.status });
      if (file.status === "PENDING") again.push(ref);
    };
    if (listed.length > 0) {
      const registered = await registerFiles(ctx.db, {
        ingestionId: ingestion.id,
        runId: run.id,
        files: listed,
        modifiedPolicy: ingestion.modifiedPolicy,
        reportKnown: true,
      });
      ({ created, modified } = registered);
      accepted.push(...created, ...modified);
      registered.known.forEach(keep);
      const answered = new Set(accepted.map((file) => file.path));
      // A path whose key another path holds is refused like the others: as it was given.
      for (const refusal of registered.refused) {
        answered.add(refusal.path);
        refused.push({ path: wanted.get(refusal.path)?.path ?? refusal.path, reason: refusal.reason });
      }
      // Paths a concurrent submission registered after this one's snapshot, or moved on while this one
      // looked: read as they are now.
      const unanswered = listed.filter((file) => !answered.has(file.uri)).map((file) => file.uri);
      if (unanswered.length > 0) {
        const now = await getFilesByPaths(ctx.db, ingestion.id, unanswered);
        for (const uri of unanswered) {
          const file = now.get(uri);
          if (file !== undefined) {
            keep({ id: file.id, version: file.version, path: file.filePath, status: file.status });
          } else {
            // Its key was taken meanwhile by another path a concurrent caller registered (a collision):
            // said, never left out of the answer.
            refused.push({ path: wanted.get(uri)?.path ?? uri, reason: CONCURRENT_KEY_REASON });
          }
        }
      }
    }
    lap("register");
    // Registered files are enqueued even when the process is stopping: a job is cheaper than the
    // reconciler's wait.
    // New files' first versions cannot have had a job: no look for finished ones.
    await enqueueFiles(ctx.queue, ingestion, created, { firstJobs: true });
    await enqueueFiles(ctx.queue, ingestion, [...modified, ...again]);
    lap("enqueue");
  } catch (err) {
    const counts = { filesFound: listed.length, filesNew: created.length, filesModified: modified.length };
    await finishFailed(ctx, run, counts, err, signal, refused);
    throw err;
  }
  const finished = await finishRun(ctx.db, run.id, {
    filesFound: listed.length,
    filesNew: created.length,
    filesModified: modified.length,
    refused,
  });
  ctx.logger.info(
    { ingestion: ingestion.name, runId: run.id, accepted: accepted.length, refused: refused.length, ms },
    "files submitted",
  );
  return { run: finished, accepted, refused, uris };
}

/** Why a path whose 128-bit key a different path took at the same moment is refused. */
const CONCURRENT_KEY_REASON =
  "its 128-bit path key (SHA-256 prefix) was taken at the same moment by a different path another caller " +
  "registered, so the two cannot be told apart; rename the object and submit it again";

/** An object to look up: the path as first given, and its key in the store (parsed once). */
interface Wanted {
  path: string;
  key: string;
}

/**
 * Which paths lie inside the ingestion's source and match its pattern: the URI of each (`uris`, by the
 * path as given), one spelling per URI to look up (`wanted`, URI → the first spelling and the object's
 * key), and the rest refused with the reason.
 */
function checkPaths(
  ingestion: Ingestion,
  paths: string[],
): Pick<Submission, "refused" | "uris"> & { wanted: Map<string, Wanted> } {
  const refused: Submission["refused"] = [];
  const uris = new Map<string, string>();
  const wanted = new Map<string, Wanted>();
  const matches = ingestion.glob ? compileGlob(ingestion.glob) : undefined;
  const includeHidden = readSourceSettings(ingestion.listing).includeHidden === true;
  const resolve = withinSource(ingestion.sourceUri);
  for (const path of paths) {
    let resolved: ResolvedPath;
    try {
      resolved = resolve(path);
    } catch (err) {
      refused.push({ path, reason: reasonOf(err) });
      continue;
    }
    const { uri, key, relative } = resolved;
    uris.set(path, uri);
    if (matches && !matches(relative)) {
      refused.push({
        path,
        reason: `does not match the ingestion's pattern ${JSON.stringify(ingestion.glob)}`,
      });
      continue;
    }
    if (isCopyInProgress(relative)) {
      refused.push({ path, reason: COPY_IN_PROGRESS_REASON });
      continue;
    }
    if (!includeHidden && isHiddenKey(relative)) {
      refused.push({ path, reason: HIDDEN_NAME_REASON });
      continue;
    }
    if (!wanted.has(uri)) wanted.set(uri, { path, key });
  }
  return { refused, uris, wanted };
}

/**
 * Looks each wanted object up, {@link STAT_CONCURRENCY} at a time: the ones that exist, as listed; a
 * missing one is refused (into `refused`). Throws the first outage (storage down, throttling) or the abort.
 */
async function statWanted(
  store: ObjectStore,
  wanted: Map<string, Wanted>,
  refused: Submission["refused"],
  signal: AbortSignal | undefined,
): Promise<ListedFile[]> {
  const listed: ListedFile[] = [];
  const entries = [...wanted];
  let next = 0;
  let failure: unknown;
  const statOne = async (): Promise<void> => {
    while (next < entries.length && failure === undefined) {
      if (signal?.aborted) {
        failure ??= signal.reason;
        return;
      }
      const [uri, { path, key }] = entries[next++] as [string, Wanted];
      try {
        const info = await store.stat(key);
        if (info?.refusal !== undefined) refused.push({ path, reason: info.refusal });
        else if (info)
          listed.push({ uri: info.uri, size: info.size, etag: info.etag, modifiedAt: info.modifiedAt });
        else refused.push({ path, reason: `no such object: ${uri}` });
      } catch (err) {
        if (outageOf(err) !== undefined) failure ??= err;
        else refused.push({ path, reason: reasonOf(err) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(STAT_CONCURRENCY, entries.length) }, statOne));
  // An outage is an Error; an abort throws the signal's reason as it is, as throwIfAborted does.
  // eslint-disable-next-line @typescript-eslint/only-throw-error
  if (failure !== undefined) throw failure;
  return listed;
}

/** Records a submission that could not finish (an outage, an abort, a database error) on its run. */
async function finishFailed(
  ctx: PipelineContext,
  run: Run,
  counts: { filesFound: number; filesNew: number; filesModified: number },
  err: unknown,
  signal: AbortSignal | undefined,
  refused?: Submission["refused"],
): Promise<void> {
  const interrupted = signal?.aborted === true && err === signal.reason;
  await finishRun(ctx.db, run.id, {
    ...counts,
    ...(refused ? { refused } : {}),
    error: interrupted
      ? {
          type: "Interrupted",
          message:
            "the process stopped during the submission: a lakeferry-submit job runs again by itself; " +
            "an HTTP or CLI submission is to be sent again (paths already registered are answered as known)",
        }
      : { type: err instanceof LakeferryError ? err.code : "Error", message: errorMessage(err) },
  }).catch(() => {});
}

function reasonOf(err: unknown): string {
  if (err instanceof InvalidInputError) return err.message.slice(err.field.length + 2);
  return errorMessage(err);
}
