/**
 * A dependency lakeferry cannot work without: the Spark Connect server, the Postgres database, Redis (the
 * job queue) or the object store files are read from.
 */
export type Outage = "spark" | "postgres" | "redis" | "storage";

/** Options of {@link LakeferryError}. */
export interface LakeferryErrorOptions {
  /** Whether trying the same work again can help. */
  retryable: boolean;
  /** The error this one wraps (the driver's or SDK's error, a lower layer's). */
  cause?: unknown;
  /**
   * Set when the error says a dependency is unreachable, overloaded, restarting or refusing our credentials,
   * not that the work item (a file) is bad. Such an error is always retryable.
   */
  outage?: Outage;
}

/**
 * The base of every error lakeferry raises on purpose. `code` is stable and machine-readable;
 * `retryable` says whether trying the same work again can help (a transient fault) or not (bad input,
 * an unparseable file, a missing object); `outage`, when set, names the dependency that is down.
 */
export class LakeferryError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  /**
   * The dependency this error says is unreachable, overloaded, restarting or refusing our credentials.
   * Callers should pause and retry later without blaming the work item (see {@link outageOf}). Undefined
   * when the error is about the work itself.
   */
  readonly outage?: Outage;

  constructor(code: string, message: string, options: LakeferryErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable || options.outage !== undefined;
    if (options.outage !== undefined) this.outage = options.outage;
  }
}

/** Input a caller gave is not valid: a bad path, table name, option or request. Never retryable. */
export class InvalidInputError extends LakeferryError {
  /** The field or argument that was wrong, as the caller named it. */
  readonly field: string;

  constructor(field: string, message: string) {
    super("INVALID_INPUT", `${field}: ${message}`, { retryable: false });
    this.field = field;
  }
}

/**
 * Whether an error is worth retrying. Errors that classify themselves answer for themselves;
 * anything unknown is treated as transient, since giving up on a file is the costlier mistake.
 */
export function isRetryable(error: unknown): boolean {
  if (error instanceof LakeferryError) return error.retryable;
  if (error !== null && typeof error === "object" && "retryable" in error) {
    return error.retryable !== false;
  }
  return true;
}

/** How many errors of a `cause` chain {@link outageOf} looks at. */
const MAX_CAUSE_DEPTH = 5;

/**
 * The dependency whose outage an error reports, or undefined when it reports none. Looks at the error and
 * its `cause` chain (up to 5 levels), so a wrapper keeps the verdict of what it wraps; the first
 * {@link LakeferryError} with an `outage` answers. A LakeferryError that is not retryable ends the search:
 * it judged the failure permanent, whatever it wraps. Only LakeferryErrors carry the fact: a bare socket
 * error (ECONNREFUSED, ECONNRESET, …) does not say which dependency it came from, so it counts as none;
 * each package classifies its own driver's errors.
 */
export function outageOf(error: unknown): Outage | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH && current instanceof Error; depth++) {
    if (current instanceof LakeferryError) {
      if (current.outage !== undefined) return current.outage;
      if (!current.retryable) return undefined;
    }
    current = current.cause;
  }
  return undefined;
}

/** A short, stable name for an error's kind, recorded with a failed file. */
export function errorType(error: unknown): string {
  if (error instanceof LakeferryError) return error.code;
  if (error instanceof Error) return error.name;
  return "UnknownError";
}

/** The message of any thrown value. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
