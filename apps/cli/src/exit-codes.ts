import { errorMessage, errorType, InvalidInputError, LakeferryError, outageOf } from "@lakeferry/core";

/** The command did what was asked. */
export const EXIT_OK = 0;
/** Bad input (argument, environment, ingestion file, query), or files of the run FAILED. */
export const EXIT_INVALID = 1;
/** The operation itself failed: a discovery run failed, a wait timed out, a service was unreachable. */
export const EXIT_FAILED = 2;

/** Bad input is the caller's to fix: a non-retryable error lakeferry raised on purpose. */
export function isBadInput(error: unknown): boolean {
  return error instanceof InvalidInputError || (error instanceof LakeferryError && !error.retryable);
}

/**
 * The one line printed for an error: its message (whitespace collapsed, at most 2,000 characters), the
 * error's kind first unless it is plain bad input. No stack trace: logs carry those at debug level.
 */
export function describeError(error: unknown): string {
  const message = errorMessage(error)
    .replace(/\s*\n\s*/g, " ")
    .trim();
  const clipped = message.length > 2_000 ? `${message.slice(0, 2_000)}…` : message;
  const hint = OUTAGE_HINTS[outageOf(error) ?? ""] ?? "";
  return error instanceof InvalidInputError ? clipped : `${errorType(error)}: ${clipped}${hint}`;
}

/** What to check when a service is down, by the outage an error reports. */
const OUTAGE_HINTS: Record<string, string> = {
  postgres: " (check that Postgres is up and reachable at DATABASE_URL, then run the command again)",
  redis: " (check that Redis is up and reachable at REDIS_URL, then run the command again)",
  spark: " (check that Spark Connect is up and reachable at SPARK_REMOTE, then run the command again)",
};

export function exitCodeFor(error: unknown): number {
  return isBadInput(error) ? EXIT_INVALID : EXIT_FAILED;
}
