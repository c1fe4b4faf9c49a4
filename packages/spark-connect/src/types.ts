/**
 * A value bound to a SQL parameter or used as a literal. Numbers become INT when they fit 32 bits, BIGINT
 * when they are other safe integers, DOUBLE otherwise; bigints become BIGINT; Dates become TIMESTAMP
 * (microseconds, UTC); null becomes an untyped NULL.
 */
export type SqlArg = string | number | bigint | boolean | null | Date;

/** Per-call options of anything that runs on the server. */
export interface ExecutionOptions {
  /** Time the call may take, in milliseconds. Default: the client's `deadlineMs` (10 minutes). */
  deadlineMs?: number;
  /**
   * Aborting cancels the call and asks the server to interrupt the operation (best effort). The call then
   * rejects with a retryable SparkConnectError whose code is `SPARK_ABORTED`.
   */
  signal?: AbortSignal;
  /** Tags the operation carries on the server (visible in its UI and logs). Non-empty, without commas. */
  tags?: string[];
}

/**
 * One result row, keyed by column name. Arrow values become JS values: BIGINT → number when safe, else
 * bigint; TIMESTAMP and DATE → Date; DECIMAL → string (exact); arrays → arrays; structs → objects; maps with
 * string keys → plain objects, other maps → Map; BINARY → Uint8Array; NULL → null.
 */
export type Row = Record<string, unknown>;
