import { createHash } from "node:crypto";
import { InvalidInputError } from "@lakeferry/core";
import { formatStorageUri, parseStorageUri, type StorageLocation } from "@lakeferry/storage";
import { z } from "zod";
import { CronExpression } from "./cron-expression.ts";

/** What happens to a source object once its file's batch committed and the retention passed. */
export const CLEAN_SOURCE_MODES = ["off", "move", "delete"] as const;

/** Source cleanup settings once defaults are applied (stored with the ingestion; null = off). */
export interface CleanSourceSettings {
  mode: "move" | "delete";
  /** Where moved objects go (a directory URI ending in "/", on the source's service); null for delete. */
  moveTo: string | null;
  /** How long after its batch committed a file's source object is left alone, in ms. */
  retentionMs: number;
  /** When the cleanup job runs (cron, UTC). */
  schedule: string;
}

const DAY_MS = 86_400_000;
const UNIT_MS: Readonly<Record<string, number>> = { d: DAY_MS, h: 3_600_000, m: 60_000 };

/** Defaults: 30 days, at least 7 before a delete (as Auto Loader's cleanSource). */
export const CLEAN_SOURCE_DEFAULTS = { retentionMs: 30 * DAY_MS, minDeleteRetentionMs: 7 * DAY_MS } as const;

/** A retention: days as a number (`30`), or a number with a unit (`30d`, `12h`, `90m`). */
const Retention = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const match = typeof value === "string" ? /^\s*(\d+(?:\.\d+)?)\s*([dhm])\s*$/.exec(value) : null;
  const ms =
    typeof value === "number"
      ? value * DAY_MS
      : match
        ? Number(match[1]) * (UNIT_MS[match[2] ?? ""] ?? NaN)
        : NaN;
  if (Number.isFinite(ms) && ms >= 0 && ms <= 3_650 * DAY_MS) return Math.round(ms);
  ctx.addIssue({
    code: "custom",
    message: `${JSON.stringify(value)} is not a retention: write days (30) or a number with a unit d, h or m (30d, 12h), at most 3650d`,
  });
  return z.NEVER;
});

/**
 * `cleanSource:` as an ingestion file writes it: a mode alone (`off`, the default, or `delete`), or
 * `{ mode, moveTo, retention, schedule }`. Checked against the source by {@link cleanSourceRefusals}.
 */
export const CleanSourceSpec = z.preprocess(
  // `cleanSource: delete` is `{ mode: delete }`; `false` (YAML 1.1's `off`) is `{ mode: off }`.
  (value) => (value === false ? { mode: "off" } : typeof value === "string" ? { mode: value } : value),
  z.strictObject({
    mode: z.enum(CLEAN_SOURCE_MODES),
    /** Where moved objects go: a directory on the source's service, outside the source. */
    moveTo: z.string().min(1, "must not be empty").optional(),
    retention: Retention.optional(),
    schedule: CronExpression.optional(),
  }),
);
export type CleanSourceSpec = z.infer<typeof CleanSourceSpec>;

type Refusal = { path: string[]; message: string };

/** A location as a directory: everything inside starts with its prefix. */
function asDirectory(location: StorageLocation): StorageLocation {
  const { prefix } = location;
  return { ...location, prefix: prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/` };
}

/**
 * Whether objects moved to `moveTo` could be listed under `source`: the same container and one prefix
 * starting with the other (a listing matches key prefixes, so `landing` also lists `landing-archive/`).
 */
export function moveToOverlaps(moveTo: string, source: string): boolean {
  const target = asDirectory(parseStorageUri(moveTo));
  const listed = parseStorageUri(source);
  if (target.scheme !== listed.scheme || target.container !== listed.container) return false;
  return target.prefix.startsWith(listed.prefix) || listed.prefix.startsWith(target.prefix);
}

/** Why `cleanSource` cannot be taken for this source, one message per problem (none when it can). */
export function cleanSourceRefusals(spec: CleanSourceSpec | undefined, source: string): Refusal[] {
  const clean = spec;
  if (clean === undefined) return [];
  const at = (key: string): string[] => ["cleanSource", key];
  const refusals: Refusal[] = [];
  if (
    clean.mode === "delete" &&
    (clean.retention ?? CLEAN_SOURCE_DEFAULTS.retentionMs) < CLEAN_SOURCE_DEFAULTS.minDeleteRetentionMs
  ) {
    refusals.push({
      path: at("retention"),
      message:
        "must be at least 7d with mode: delete, so that a problem found in the table can still be fixed from the " +
        "source files; or use mode: move",
    });
  }
  if (clean.mode !== "move") {
    if (clean.moveTo !== undefined) {
      refusals.push({ path: at("moveTo"), message: `is only for mode: move (mode is ${clean.mode})` });
    }
    return refusals;
  }
  if (clean.moveTo === undefined) {
    refusals.push({
      path: at("moveTo"),
      message:
        "is required with mode: move: a location outside the source on the same store " +
        "(e.g. cleanSource: {mode: move, moveTo: s3://bucket/archive/})",
    });
    return refusals;
  }
  let target: StorageLocation;
  let listed: StorageLocation;
  try {
    target = parseStorageUri(clean.moveTo);
    listed = parseStorageUri(source);
  } catch (err) {
    const message = err instanceof InvalidInputError ? err.message.slice(err.field.length + 2) : String(err);
    refusals.push({ path: at("moveTo"), message });
    return refusals;
  }
  const account = (location: StorageLocation): string => location.container.split("/")[0] ?? "";
  if (target.scheme !== listed.scheme) {
    refusals.push({
      path: at("moveTo"),
      message: `must be on the same store as the source (${listed.scheme}://…), not ${target.scheme}://`,
    });
  } else if (target.scheme === "az" && account(target) !== account(listed)) {
    refusals.push({
      path: at("moveTo"),
      message: `must be in the source's storage account ${account(listed)}, not ${account(target)}`,
    });
  } else if (moveToOverlaps(clean.moveTo, source)) {
    refusals.push({
      path: at("moveTo"),
      message:
        `${formatStorageUri(asDirectory(target))} overlaps the source ${source}: moved files would be listed and ` +
        "ingested again; choose a location outside the source",
    });
  }
  return refusals;
}

/** The hourly default schedule, at a minute spread by the ingestion's name (away from table maintenance's). */
export function defaultCleanSchedule(name: string): string {
  const minute = (createHash("sha256").update(name).digest().readUInt16BE(0) + 30) % 60;
  return `${minute} * * * *`;
}

/** The settings stored with the ingestion: null when off. Call after {@link cleanSourceRefusals} found none. */
export function resolveCleanSource(
  spec: CleanSourceSpec | undefined,
  ingestion: { name: string },
): CleanSourceSettings | null {
  const clean = spec;
  if (clean === undefined || clean.mode === "off") return null;
  return {
    mode: clean.mode,
    moveTo:
      clean.mode === "move" && clean.moveTo
        ? formatStorageUri(asDirectory(parseStorageUri(clean.moveTo)))
        : null,
    retentionMs: clean.retention ?? CLEAN_SOURCE_DEFAULTS.retentionMs,
    schedule: clean.schedule ?? defaultCleanSchedule(ingestion.name),
  };
}

const StoredSettings = z.object({
  mode: z.enum(["move", "delete"]),
  moveTo: z.string().nullable(),
  retentionMs: z.number().int().min(0),
  schedule: z.string(),
});

/** The settings as stored with an ingestion; null when off (or stored before cleanup existed). */
export function storedCleanSource(stored: unknown): CleanSourceSettings | null {
  const parsed = StoredSettings.safeParse(stored);
  return parsed.success ? parsed.data : null;
}

/**
 * Where a source object goes when moved: `moveTo` followed by the object's path below the directory of the
 * source (`s3://b/landing/2024/a.json` from `s3://b/landing/` to `s3://b/archive/` → `s3://b/archive/2024/a.json`).
 */
export function moveTarget(fileUri: string, source: string, moveTo: string): string {
  const file = parseStorageUri(fileUri);
  const listed = parseStorageUri(source);
  const base = listed.prefix.slice(0, listed.prefix.lastIndexOf("/") + 1);
  if (!file.prefix.startsWith(base)) {
    throw new InvalidInputError("path", `${fileUri} is not below the source ${source}`);
  }
  const target = asDirectory(parseStorageUri(moveTo));
  return formatStorageUri({ ...target, prefix: target.prefix + file.prefix.slice(base.length) });
}
