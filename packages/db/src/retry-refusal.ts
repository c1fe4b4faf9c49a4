import type { FileStatus } from "./types.ts";

/**
 * Why a file in `status` may not be retried, or undefined when it may: the rule `lakeferry retry` and the
 * API's retry both apply before `resetFilesForRetry`, so that each refusal reads the same. A SUCCESS
 * file's rows are in the table already, and a PENDING or PROCESSING one is on its way; with `failedOnly`
 * (only FAILED files were asked for) a SKIPPED one is refused too. Callers put the file and its status
 * before the reason: `a.json is SUCCESS: its rows are in the table already (…)`.
 */
export function retryRefusal(status: FileStatus, options: { failedOnly?: boolean } = {}): string | undefined {
  switch (status) {
    case "SUCCESS":
      return "its rows are in the table already (retrying would write them twice)";
    case "PENDING":
    case "PROCESSING":
      return "it is being ingested already";
    default:
      return options.failedOnly && status !== "FAILED" ? "only FAILED files were asked for" : undefined;
  }
}
