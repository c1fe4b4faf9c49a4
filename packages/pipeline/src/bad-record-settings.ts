import { ON_ERROR_VALUES, type BadRecordsPolicy, type OnError } from "@lakeferry/iceberg";
import { z } from "zod";

/** `onError:` as an ingestion file writes it; see {@link BadRecordsPolicy}. */
export const OnErrorSpec = z.enum(ON_ERROR_VALUES as [OnError, ...OnError[]]);

/**
 * `maxBadRecords:` as an ingestion file writes it: a count of records (`100`) or a percentage of the
 * records parsed in the file (`"1%"`, `"0.5%"`).
 */
export const MaxBadRecordsSpec = z.union([z.number(), z.string()]).transform((value, ctx) => {
  if (typeof value === "number") {
    if (Number.isSafeInteger(value) && value >= 0) return { count: value };
  } else {
    const match = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(value);
    const percent = match ? Number(match[1]) : NaN;
    if (percent >= 0 && percent <= 100) return { percent };
    if (/^\s*\d+\s*$/.test(value)) return { count: Number(value) };
  }
  ctx.addIssue({
    code: "custom",
    message: `${JSON.stringify(value)} is not a limit: write a count of records (100) or a percentage of a file's records ("1%", at most 100%)`,
  });
  return z.NEVER;
});

/** Formats that can have bad records: the others fail a corrupt file whole. */
const RECORD_FORMATS = new Set(["json", "csv"]);

/**
 * Why an ingestion's `onError`/`maxBadRecords` cannot be used as written, with the key to change, or
 * undefined when they can.
 */
export function badRecordsRefusal(spec: {
  format: string;
  onError?: OnError | undefined;
  maxBadRecords?: unknown;
}): { message: string; path: string[] } | undefined {
  const onError = spec.onError ?? "abortFile";
  if (spec.maxBadRecords !== undefined && onError === "abortFile") {
    return {
      path: ["maxBadRecords"],
      message:
        "abortFile fails a file at its first bad record; use onError: continue (bad records up to the limit go to <table>__rejected, beyond it the file fails) or skipFile (beyond it the file is skipped)",
    };
  }
  if (onError !== "abortFile" && !RECORD_FORMATS.has(spec.format)) {
    return {
      path: ["onError"],
      message: `${spec.format} files have no per-record errors (a corrupt file fails whole); onError applies to json and csv, leave it out`,
    };
  }
  return undefined;
}

/** The policy the database stores for the spec (null: abortFile, today's behaviour). */
export function resolveBadRecords(spec: {
  onError?: OnError | undefined;
  maxBadRecords?: BadRecordsPolicy["maxBadRecords"];
}): BadRecordsPolicy | null {
  if (spec.onError === undefined || spec.onError === "abortFile") return null;
  return {
    onError: spec.onError,
    ...(spec.maxBadRecords === undefined ? {} : { maxBadRecords: spec.maxBadRecords }),
  };
}

/** The stored policy (opaque JSON) as the writer takes it; undefined for abortFile or anything unknown. */
export function badRecordsOf(stored: unknown): BadRecordsPolicy | undefined {
  if (stored === null || typeof stored !== "object") return undefined;
  const { onError, maxBadRecords } = stored as { onError?: unknown; maxBadRecords?: unknown };
  if (onError !== "continue" && onError !== "skipFile") return undefined;
  if (maxBadRecords !== null && typeof maxBadRecords === "object") {
    const max = maxBadRecords as { count?: unknown; percent?: unknown };
    if (typeof max.count === "number") return { onError, maxBadRecords: { count: max.count } };
    if (typeof max.percent === "number") return { onError, maxBadRecords: { percent: max.percent } };
  }
  return { onError };
}
