import { z } from "zod";
import { StoreCredentials } from "./store-credentials.ts";

/**
 * How an ingestion's source is listed and read, kept in the ingestion's `listing` column (opaque to the
 * database).
 */
export const SourceSettings = z.object({
  /**
   * `full` lists every object under the source each pass; `incremental` resumes after the last key the
   * previous pass saw (new keys sort after old ones in most landing layouts) and lists in full every
   * `fullListingEveryMs` to catch the rest.
   */
  mode: z.enum(["full", "incremental"]).default("full"),
  /**
   * A date-partitioned layout: only the prefixes of `template` (e.g. `year={yyyy}/month={MM}/day={dd}/`)
   * inside the last `lookbackDays` are listed, in parallel.
   */
  partitions: z.object({ template: z.string().min(1), lookbackDays: z.number().positive() }).optional(),
  /** In incremental mode, list the whole source at least this often (ms). Default one day. */
  fullListingEveryMs: z.number().int().positive().optional(),
  /**
   * Register files with a path segment starting with `_` or `.` (`_SUCCESS`, `.x.crc`, `_temporary/…`).
   * Default false: they are left out, each recorded on the run with {@link HIDDEN_NAME_REASON}.
   */
  includeHidden: z.boolean().optional(),
  /**
   * Leave a file modified less than this long ago (ms) for a later pass: it may still be being written.
   * Default {@link defaultMinAgeMs} of the source's scheme.
   */
  minAgeMs: z.number().int().nonnegative().optional(),
  /** URI rewrites from the listing's form to the form Spark reads (`s3://` → `s3a://` is built in). */
  sparkPathRules: z.array(z.object({ from: z.string(), to: z.string() })).optional(),
  /**
   * The source's own endpoint and credentials, as references to environment variables or files (never
   * the secrets); resolved where the store is used, see `storeOptionsFor` (which refuses a stored block
   * that is not valid; here it is only left out, so the other settings still read).
   */
  credentials: StoreCredentials.optional().catch(undefined),
});
export type SourceSettings = z.infer<typeof SourceSettings>;

/** Where an incremental listing resumes, kept in the ingestion's `listing_cursor` column. */
export const ListingCursor = z.object({
  /** The greatest key listed so far. */
  lastKey: z.string().optional(),
  /** When the source was last listed in full (ISO time). */
  lastFullListingAt: z.string().optional(),
  /** The first file deferred as too young on the last pass, and since when (ISO time) the cursor waits on it. */
  heldBy: z.object({ key: z.string(), since: z.string() }).optional(),
});
export type ListingCursor = z.infer<typeof ListingCursor>;

/** Reads stored settings leniently: anything unreadable falls back to a full listing. */
export function readSourceSettings(value: unknown): SourceSettings {
  const parsed = SourceSettings.safeParse(value ?? {});
  return parsed.success ? parsed.data : { mode: "full" };
}

/** Reads a stored cursor leniently: anything unreadable means "start from the beginning". */
export function readListingCursor(value: unknown): ListingCursor {
  const parsed = ListingCursor.safeParse(value ?? {});
  return parsed.success ? parsed.data : {};
}

/** Default period of full listings in incremental mode: one day. */
export const DEFAULT_FULL_LISTING_EVERY_MS = 86_400_000;

/**
 * `listing.minAgeMs` when not given: 5 s for a local folder, whose files are visible while a writer
 * appends to them; 0 for object stores, where an object appears whole once its upload completes.
 */
export function defaultMinAgeMs(scheme: string): number {
  return scheme === "file" ? 5_000 : 0;
}

/** Why a copy still in progress (`._COPYING_`) is not registered, whatever `listing.includeHidden` says. */
export const COPY_IN_PROGRESS_REASON =
  "a copy in progress (Hadoop's ._COPYING_ name), never ingested: its final name is, once the copy completes";

/** Why a file with a hidden name was not registered (recorded on the run, one line per path). */
export const HIDDEN_NAME_REASON =
  "hidden name (a path segment starts with _ or .), left out as Spark leaves out markers and temporary files; set listing.includeHidden: true to ingest it";

/** Why a file too recently modified was not registered on this pass. */
export function deferredReason(ageMs: number, minAgeMs: number): string {
  return `deferred: modified ${Math.max(0, Math.round(ageMs))} ms ago, under listing.minAgeMs (${minAgeMs}), so it may still be being written; a later pass registers it`;
}
