import { randomUUID } from "node:crypto";
import { errorMessage, type Logger } from "@lakeferry/core";
import {
  acquireMaintenanceLease,
  dueSourceCleanups,
  markSourcesCleaned,
  recordSourceCleanups,
  releaseMaintenanceLease,
  type Database,
  type DueCleanupBatch,
  type DueCleanupFile,
  type Ingestion,
  type SourceCleanupAction,
  type SourceCleanupOutcome,
} from "@lakeferry/db";
import {
  createObjectStore,
  parseStorageUri,
  StorageNotFoundError,
  type ObjectStore,
  type StoreOptions,
} from "@lakeferry/storage";
import { moveTarget, storedCleanSource, type CleanSourceSettings } from "./clean-source-settings.ts";
import { storeOptionsFor } from "./store-credentials.ts";

export interface SourceCleanerOptions {
  db: Database;
  logger: Logger;
  /** The app's storage options for a URI (its environment); the ingestion's `credentials` apply on top. */
  storeOptions?: (uri: string) => StoreOptions;
  /** Committed batches read, and their files cleaned, per chunk. Default 50. */
  batchesPerChunk?: number;
  /** Storage calls (stat, copy, delete) at once. Default 8. */
  concurrency?: number;
  /** Files tried in one run at most; the next run goes on from the oldest batch left. Default 50 000. */
  maxFilesPerRun?: number;
  /**
   * How long the run's lease on the ingestion's cleanup (`maintenance_leases`, `clean-source:<id>`) lasts
   * without renewal, in ms; it is renewed before each chunk, and another run of the same ingestion (another
   * discoverer, the CLI) finds it held and does nothing. Default 300 000.
   */
  leaseMs?: number;
}

/** What one cleanup run did. */
export type SourceCleanupReport =
  /** cleanSource is off for this ingestion. */
  | { kind: "off" }
  /** Another run is cleaning this ingestion's source (it holds the lease): nothing done. */
  | { kind: "busy" }
  | {
      kind: "done";
      mode: CleanSourceSettings["mode"];
      /** Files whose source object was moved to moveTo, or deleted. */
      moved: number;
      deleted: number;
      /** Files whose source object was gone already (removed by someone else): nothing to do. */
      alreadyGone: number;
      /** Files whose source object changed since it was ingested: left in place, never tried again. */
      keptChanged: number;
      /**
       * Files registered under an earlier source of the ingestion (its `source` was changed since): their
       * objects are left in place, never tried again.
       */
      keptOutside: number;
      /** Files whose cleanup failed this run: recorded with the error and tried again by the next run. */
      failed: number;
      /** Committed batches all of whose files are cleaned now. */
      batchesCleaned: number;
      /** True when the run stopped at `maxFilesPerRun` or after a chunk that failed whole: more is due. */
      more: boolean;
      ms: number;
    };

/**
 * Cleans an ingestion's source (`cleanSource`): the source objects of files SUCCESS in a batch that committed
 * more than the retention ago are moved to `moveTo` or deleted, in chunks of committed batches (oldest commit
 * first), each file's outcome recorded in `source_cleanups`. Only the source objects are touched, never the
 * table or the files' rows: a file stays SUCCESS, so discovery, which skips known paths, never registers a
 * cleaned path again (a new object landing under the same name later is a change, as without cleanup).
 *
 * An object is cleaned only while it is the one ingested (same etag and size as the file's row): an object
 * replaced since is left in place (`kept_changed`), as is one registered under an earlier `source` of the
 * ingestion (`kept_outside_source`). A failed move or delete is recorded with its error and
 * tried again by the next run; a move interrupted between copy and delete finishes on the next try. One run
 * at a time per ingestion across the fleet (a lease row in Postgres).
 */
export class SourceCleaner {
  readonly #db: Database;
  readonly #logger: Logger;
  readonly #storeOptions: ((uri: string) => StoreOptions) | undefined;
  readonly #batchesPerChunk: number;
  readonly #concurrency: number;
  readonly #maxFilesPerRun: number;
  readonly #leaseMs: number;

  constructor(options: SourceCleanerOptions) {
    this.#db = options.db;
    this.#logger = options.logger;
    this.#storeOptions = options.storeOptions;
    this.#batchesPerChunk = options.batchesPerChunk ?? 50;
    this.#concurrency = options.concurrency ?? 8;
    this.#maxFilesPerRun = options.maxFilesPerRun ?? 50_000;
    this.#leaseMs = options.leaseMs ?? 300_000;
  }

  /**
   * Cleans what is due of the ingestion's source now.
   * @throws the abort reason when `signal` aborts; Postgres errors (storage errors are per file, recorded).
   */
  async run(ingestion: Ingestion, signal: AbortSignal): Promise<SourceCleanupReport> {
    const settings = storedCleanSource(ingestion.cleanSource);
    if (settings === null) return { kind: "off" };
    const started = performance.now();
    const log = this.#logger.child({
      ingestion: ingestion.name,
      ingestionId: ingestion.id,
      task: "cleanSource",
    });
    const lease = {
      name: `clean-source:${ingestion.id}`,
      holder: `cleaner-${randomUUID()}`,
      ttlMs: this.#leaseMs,
    };
    if (!(await acquireMaintenanceLease(this.#db, lease))) {
      log.info({}, "source cleanup already running elsewhere; nothing done");
      return { kind: "busy" };
    }
    try {
      return await this.#runHolding(ingestion, settings, lease, log, started, signal);
    } finally {
      await releaseMaintenanceLease(this.#db, lease).catch(() => {});
    }
  }

  async #runHolding(
    ingestion: Ingestion,
    settings: CleanSourceSettings,
    lease: { name: string; holder: string; ttlMs: number },
    log: Logger,
    started: number,
    signal: AbortSignal,
  ): Promise<SourceCleanupReport> {
    const options = await storeOptionsFor(ingestion, this.#storeOptions?.(ingestion.sourceUri));
    const store = createObjectStore(ingestion.sourceUri, options);
    const archive = settings.moveTo === null ? undefined : createObjectStore(settings.moveTo, options);
    const report = {
      kind: "done" as const,
      mode: settings.mode,
      moved: 0,
      deleted: 0,
      alreadyGone: 0,
      keptChanged: 0,
      keptOutside: 0,
      failed: 0,
      batchesCleaned: 0,
      more: false,
      ms: 0,
    };
    const counts: Record<
      SourceCleanupAction,
      "moved" | "deleted" | "alreadyGone" | "keptChanged" | "keptOutside"
    > = {
      moved: "moved",
      deleted: "deleted",
      already_gone: "alreadyGone",
      kept_changed: "keptChanged",
      kept_outside_source: "keptOutside",
    };
    // Renewed before each chunk and every third of its time during one (a chunk of large batches may hold
    // thousands of files); once lost (another run took over after it expired), the run stops.
    let renewedAt = 0;
    let lost = false;
    const keepLease = async (): Promise<boolean> => {
      if (lost) return false;
      if (Date.now() - renewedAt < lease.ttlMs / 3) return true;
      const askedAt = Date.now();
      if (await acquireMaintenanceLease(this.#db, lease)) renewedAt = askedAt;
      else lost = true;
      return !lost;
    };
    try {
      let after: DueCleanupBatch | undefined;
      let tried = 0;
      for (;;) {
        signal.throwIfAborted();
        renewedAt = 0;
        if (!(await keepLease())) {
          report.more = true;
          break;
        }
        const { batches, files } = await dueSourceCleanups(this.#db, {
          ingestionId: ingestion.id,
          olderThanMs: settings.retentionMs,
          limit: this.#batchesPerChunk,
          ...(after ? { after } : {}),
        });
        if (batches.length === 0) break;
        const results = await mapLimit(files, this.#concurrency, async (file) =>
          (await keepLease()) ? this.#cleanOne(ingestion, settings, store, archive, file, signal) : undefined,
        );
        // Files not tried (the lease was lost) are left for the run that holds it now.
        const outcomes = results.filter((outcome) => outcome !== undefined);
        await recordSourceCleanups(this.#db, outcomes);
        const pathOf = new Map(files.map((file) => [file.fileId, file]));
        for (const outcome of outcomes) {
          if ("action" in outcome) {
            report[counts[outcome.action]] += 1;
            continue;
          }
          report.failed += 1;
          const file = pathOf.get(outcome.fileId);
          log.warn(
            {
              fileId: outcome.fileId,
              version: outcome.version,
              batchId: outcome.batchId,
              attempt: (file?.failedAttempts ?? 0) + 1,
              path: file?.path,
              err: outcome.error,
            },
            "source cleanup failed; the next run tries again",
          );
        }
        const marked = await markSourcesCleaned(
          this.#db,
          batches.map((batch) => batch.id),
        );
        report.batchesCleaned += marked.length;
        after = batches[batches.length - 1];
        tried += outcomes.length;
        const failedWhole = outcomes.length > 0 && outcomes.every((outcome) => !("action" in outcome));
        if (lost || tried >= this.#maxFilesPerRun || failedWhole) {
          report.more = true;
          break;
        }
      }
    } finally {
      await store.close().catch(() => {});
      await archive?.close().catch(() => {});
    }
    report.ms = Math.round(performance.now() - started);
    const { moved, deleted, alreadyGone, keptChanged, keptOutside, failed } = report;
    if (moved + deleted + alreadyGone + keptChanged + keptOutside + failed > 0)
      log.info(report, "source cleanup done");
    else log.debug(report, "source cleanup: nothing due");
    return report;
  }

  async #cleanOne(
    ingestion: Ingestion,
    settings: CleanSourceSettings,
    store: ObjectStore,
    archive: ObjectStore | undefined,
    file: DueCleanupFile,
    signal: AbortSignal,
  ): Promise<SourceCleanupOutcome> {
    const id = { fileId: file.fileId, version: file.version, batchId: file.batchId };
    const done = (action: SourceCleanupAction, movedTo?: string): SourceCleanupOutcome => ({
      ...id,
      action,
      ...(movedTo === undefined ? {} : { movedTo }),
    });
    try {
      signal.throwIfAborted();
      // A file registered under an earlier source: the store (and moveTo) are the current source's.
      if (!isWithin(file.path, ingestion.sourceUri)) return done("kept_outside_source");
      const key = parseStorageUri(file.path).prefix;
      const target =
        settings.moveTo === null ? undefined : moveTarget(file.path, ingestion.sourceUri, settings.moveTo);
      const info = await store.stat(key);
      if (info === undefined) {
        // An earlier move that copied and deleted but was not recorded (the process stopped): it is done.
        if (target !== undefined && archive && (await statOrNothing(archive, target)) !== undefined) {
          return done("moved", target);
        }
        return done("already_gone");
      }
      if (info.etag !== file.etag || info.size !== file.size) return done("kept_changed");
      if (target === undefined) {
        await store.deleteObject(key);
        return done("deleted");
      }
      return (await store.moveObject(key, target)) ? done("moved", target) : done("already_gone");
    } catch (err) {
      if (signal.aborted) throw err;
      return { ...id, error: errorMessage(err) };
    }
  }
}

/** Whether the source's listing covers `path`: the same container, and its key starts with the source's prefix. */
function isWithin(path: string, source: string): boolean {
  const file = parseStorageUri(path);
  const listed = parseStorageUri(source);
  return (
    file.scheme === listed.scheme &&
    file.container === listed.container &&
    file.prefix.startsWith(listed.prefix)
  );
}

/** The object at `uri` in `store`'s service, or undefined when it (or its directory or bucket) is missing. */
async function statOrNothing(store: ObjectStore, uri: string): Promise<unknown> {
  try {
    return await store.stat(parseStorageUri(uri).prefix);
  } catch (err) {
    if (err instanceof StorageNotFoundError) return undefined;
    throw err;
  }
}

/** `task` over `items`, at most `limit` at once, results in the items' order. */
async function mapLimit<T, R>(items: T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
