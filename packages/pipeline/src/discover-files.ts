import { errorMessage, errorType, InvalidInputError, LakeferryError } from "@lakeferry/core";
import {
  finishRun,
  registerFiles,
  saveListingCursor,
  startRun,
  type Ingestion,
  type ListedFile,
  type Refusal,
  type Run,
} from "@lakeferry/db";
import {
  compareKeys,
  compileGlob,
  createObjectStore,
  isCopyInProgress,
  isHiddenKey,
  listPrefixes,
  parseStorageUri,
  partitionPrefixes,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
} from "@lakeferry/storage";
import { enqueueFiles } from "./enqueue-files.ts";
import type { PipelineContext } from "./pipeline-context.ts";
import { storeOptionsFor } from "./store-credentials.ts";
import {
  DEFAULT_FULL_LISTING_EVERY_MS,
  defaultMinAgeMs,
  deferredReason,
  COPY_IN_PROGRESS_REASON,
  HIDDEN_NAME_REASON,
  readListingCursor,
  readSourceSettings,
  type ListingCursor,
  type SourceSettings,
} from "./source-settings.ts";

/** What one discovery pass did. */
export interface DiscoveryResult {
  /** The run as finished in Postgres. */
  run: Run;
  /** Objects listed that match the ingestion's pattern. */
  found: number;
  /** Files registered for the first time. */
  created: number;
  /** Known files whose etag or size changed and that become a new version to ingest. */
  modified: number;
  /** Ingest jobs added (fewer than created + modified when some already had a job). */
  enqueued: number;
  /**
   * Matching objects with a hidden name (a segment starting with `_` or `.`) not registered because
   * `listing.includeHidden` is off, and local symbolic links that lead out of the source; each is on the
   * run's refusals with the reason.
   */
  hidden: number;
  /**
   * Matching objects modified less than `listing.minAgeMs` ago, left for a later pass (possibly still
   * being written); each is on the run's refusals with the reason, and the saved cursor stays before them.
   */
  deferred: number;
  /** List requests made to the storage service. */
  listCalls: number;
  /** Why the pass stopped early: a storage problem (missing bucket, access denied, malformed URI). */
  error?: { type: string; message: string };
}

/** At most this many refused paths are listed on a discovery run; the rest are only counted. */
export const MAX_RECORDED_REFUSALS = 1_000;
/** How long the incremental cursor may wait on one ever-young file before the discoverer warns. */
const PINNED_CURSOR_WARNING_MS = 3_600_000;

function nowIso(ms: number): string {
  return new Date(ms).toISOString();
}

export interface DiscoverOptions {
  /** What started the pass. Default `manual`. */
  trigger?: "schedule" | "manual";
  /** List the whole source even in incremental mode. */
  full?: boolean;
  /** Stops the pass between pages (the run is then recorded as failed). */
  signal?: AbortSignal;
}

/**
 * One discovery pass: lists the ingestion's source page by page (in full, incrementally after the saved
 * cursor, or the date partitions inside the lookback window), keeps the objects matching its pattern,
 * registers each page in one round trip and enqueues one job per new or modified file version.
 *
 * Storage problems end the run with the error recorded and returned in `error`; they are not thrown.
 * @throws database and queue errors (after recording the run as failed, best effort).
 */
export async function discoverFiles(
  ctx: PipelineContext,
  ingestion: Ingestion,
  options: DiscoverOptions = {},
): Promise<DiscoveryResult> {
  const run = await startRun(ctx.db, { ingestionId: ingestion.id, trigger: options.trigger ?? "manual" });
  const log = ctx.logger.child({ ingestion: ingestion.name, ingestionId: ingestion.id, runId: run.id });
  const counts = { found: 0, created: 0, modified: 0, enqueued: 0, hidden: 0, deferred: 0 };
  const refused: Refusal[] = [];
  // Refusals past the first MAX_RECORDED_REFUSALS are counted on the run, not listed: a source full of
  // markers (`_SUCCESS`, `.crc`, `_temporary/`) listed in full each pass would otherwise grow run_refusals
  // by thousands of rows a pass.
  let unrecorded = 0;
  let listed = 0;
  let store: ObjectStore | undefined;
  let failure: { type: string; message: string } | undefined;
  const startedAt = Date.now();
  try {
    const source = parseStorageUri(ingestion.sourceUri);
    const base = source.prefix === "" || source.prefix.endsWith("/") ? source.prefix : `${source.prefix}/`;
    const settings = readSourceSettings(ingestion.listing);
    const choose = chooser(ingestion, settings, base, source.scheme);
    store = createObjectStore(
      ingestion.sourceUri,
      await storeOptionsFor(ingestion, ctx.storeOptions?.(ingestion.sourceUri)),
    );
    const plan = planListing(ingestion, settings, base, store, options);
    let lastKey = plan.startAfter;
    let firstDeferred: string | undefined;
    for await (const page of plan.pages) {
      options.signal?.throwIfAborted();
      const files: ListedFile[] = [];
      listed += page.objects.length;
      const now = Date.now();
      for (const object of page.objects) {
        const choice = choose(object, now);
        // The cursor stops before the first deferred file, so the next incremental pass lists it again.
        if (choice.deferred) firstDeferred ??= object.key;
        if (firstDeferred === undefined && (lastKey === undefined || compareKeys(object.key, lastKey) > 0)) {
          lastKey = object.key;
        }
        if (choice.refused !== undefined) {
          counts[choice.deferred ? "deferred" : "hidden"] += 1;
          if (refused.length < MAX_RECORDED_REFUSALS)
            refused.push({ path: object.uri, reason: choice.refused });
          else unrecorded += 1;
        }
        if (!choice.take) continue;
        files.push({ uri: object.uri, size: object.size, etag: object.etag, modifiedAt: object.modifiedAt });
      }
      if (files.length === 0) continue;
      counts.found += files.length;
      const registered = await registerFiles(ctx.db, {
        ingestionId: ingestion.id,
        runId: run.id,
        files,
        modifiedPolicy: ingestion.modifiedPolicy,
      });
      const { created, modified } = registered;
      for (const refusal of registered.refused) {
        log.warn({ path: refusal.path, reason: refusal.reason }, "file refused");
        if (refused.length < MAX_RECORDED_REFUSALS) refused.push(refusal);
        else unrecorded += 1;
      }
      counts.created += created.length;
      counts.modified += modified.length;
      // New files' first versions cannot have had a job: no look for finished ones.
      counts.enqueued += await enqueueFiles(ctx.queue, ingestion, created, { firstJobs: true });
      counts.enqueued += await enqueueFiles(ctx.queue, ingestion, modified);
    }
    if (plan.saveCursor) {
      // A file deferred before any key was passed leaves no key to resume after: the next pass lists in full.
      const { lastKey: _previous, heldBy: wasHeldBy, ...kept } = plan.cursor;
      const heldBy =
        firstDeferred === undefined
          ? undefined
          : {
              key: firstDeferred,
              since: wasHeldBy?.key === firstDeferred ? wasHeldBy.since : nowIso(startedAt),
            };
      if (heldBy && startedAt - Date.parse(heldBy.since) >= PINNED_CURSOR_WARNING_MS) {
        log.warn(
          { key: heldBy.key, since: heldBy.since },
          "the incremental cursor has waited on this file for over an hour: it keeps changing (younger than listing.minAgeMs each pass), so every file after it is listed again each pass; move it out of the source or lower listing.minAgeMs",
        );
      }
      const cursor: ListingCursor = {
        ...(firstDeferred === undefined ? { ...kept, lastKey: plan.cursor.lastKey } : kept),
        ...(lastKey === undefined ? {} : { lastKey }),
        ...(plan.full ? { lastFullListingAt: nowIso(startedAt) } : {}),
        ...(heldBy ? { heldBy } : {}),
      };
      if (cursor.lastKey === undefined) delete cursor.lastKey;
      await saveListingCursor(ctx.db, ingestion.id, cursor);
    }
  } catch (err) {
    if (!isSourceProblem(err)) {
      await finishRun(ctx.db, run.id, {
        filesFound: counts.found,
        filesNew: counts.created,
        filesModified: counts.modified,
        refused,
        refusedUnrecorded: unrecorded,
        error: { type: errorType(err), message: errorMessage(err) },
      }).catch(() => {});
      log.error({ err, errorType: errorType(err) }, "discovery failed");
      throw err;
    }
    failure = { type: errorType(err), message: errorMessage(err) };
  } finally {
    await store?.close().catch(() => {});
  }
  const finished = await finishRun(ctx.db, run.id, {
    filesFound: counts.found,
    filesNew: counts.created,
    filesModified: counts.modified,
    refused,
    refusedUnrecorded: unrecorded,
    ...(failure ? { error: failure } : {}),
  });
  const result: DiscoveryResult = {
    run: finished,
    ...counts,
    listCalls: store?.listCalls ?? 0,
    ...(failure ? { error: failure } : {}),
  };
  ctx.events?.emit("discovery:finished", {
    ingestion: ingestion.name,
    runId: run.id,
    durationSeconds: (Date.now() - startedAt) / 1000,
    objectsListed: listed,
    registered: counts.created + counts.modified,
    ...(failure ? { errorType: failure.type } : {}),
  });
  if (failure) {
    log.warn(
      { ...counts, errorType: failure.type, error: failure.message },
      "discovery stopped by a source error",
    );
  } else {
    log.info({ ...counts, listCalls: result.listCalls, ms: Date.now() - startedAt }, "discovery finished");
  }
  return result;
}

interface ListingPlan {
  pages: AsyncIterable<ListPage>;
  /** Listing the whole source (or window) rather than after a cursor. */
  full: boolean;
  startAfter: string | undefined;
  cursor: ListingCursor;
  saveCursor: boolean;
}

/** What a pass does with one listed object. */
interface Choice {
  /** Register it. */
  take: boolean;
  /** Why it is not registered, recorded on the run: a hidden name or a deferral. */
  refused?: string;
  /** Left for a later pass because it was modified too recently. */
  deferred?: boolean;
}

/**
 * How a pass treats each listed object: objects outside the source or not matching the pattern are passed
 * over silently; a hidden name (unless `listing.includeHidden`), a file the store refuses (a local link
 * out of the source) and a file modified less than `listing.minAgeMs` ago are not registered, with the
 * reason; the rest are registered.
 */
function chooser(
  ingestion: Ingestion,
  settings: SourceSettings,
  base: string,
  scheme: string,
): (object: ObjectInfo, now: number) => Choice {
  const matches = ingestion.glob ? compileGlob(ingestion.glob) : () => true;
  const includeHidden = settings.includeHidden === true;
  const minAgeMs = settings.minAgeMs ?? defaultMinAgeMs(scheme);
  return (object, now) => {
    if (!object.key.startsWith(base)) return { take: false };
    const relative = object.key.slice(base.length);
    if (!matches(relative)) return { take: false };
    if (isCopyInProgress(relative)) return { take: false, refused: COPY_IN_PROGRESS_REASON };
    if (!includeHidden && isHiddenKey(relative)) return { take: false, refused: HIDDEN_NAME_REASON };
    if (object.refusal !== undefined) return { take: false, refused: object.refusal };
    const ageMs = now - object.modifiedAt.getTime();
    if (minAgeMs > 0 && ageMs < minAgeMs) {
      return { take: false, refused: deferredReason(ageMs, minAgeMs), deferred: true };
    }
    return { take: true };
  };
}

function planListing(
  ingestion: Ingestion,
  settings: SourceSettings,
  base: string,
  store: ObjectStore,
  options: DiscoverOptions,
): ListingPlan {
  const cursor = readListingCursor(ingestion.listingCursor);
  const signal = options.signal;
  if (settings.partitions && !options.full) {
    const prefixes = partitionPrefixes(
      { template: settings.partitions.template, lookback: { days: settings.partitions.lookbackDays } },
      new Date(),
    ).map((prefix) => base + prefix);
    return {
      pages: listPrefixes(store, prefixes, signal ? { signal } : {}),
      full: true,
      startAfter: undefined,
      cursor,
      saveCursor: false,
    };
  }
  if (settings.mode === "full") {
    return {
      pages: store.listPages(base, signal ? { signal } : {}),
      full: true,
      startAfter: undefined,
      cursor,
      saveCursor: false,
    };
  }
  const every = settings.fullListingEveryMs ?? DEFAULT_FULL_LISTING_EVERY_MS;
  const lastFull = cursor.lastFullListingAt ? Date.parse(cursor.lastFullListingAt) : Number.NaN;
  const full = options.full === true || cursor.lastKey === undefined || !(Date.now() - lastFull < every);
  const startAfter = full ? undefined : cursor.lastKey;
  return {
    pages: store.listPages(base, {
      ...(startAfter === undefined ? {} : { startAfter }),
      ...(signal ? { signal } : {}),
    }),
    full,
    startAfter,
    cursor,
    saveCursor: true,
  };
}

/** Errors that describe the source (storage, a malformed URI or pattern) rather than our own machinery. */
function isSourceProblem(err: unknown): boolean {
  return (
    err instanceof InvalidInputError || (err instanceof LakeferryError && err.code.startsWith("STORAGE_"))
  );
}
