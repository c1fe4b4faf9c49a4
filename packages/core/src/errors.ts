/**
 * The base of every error lakeferry raises on purpose. `code` is stable and machine-readable;
 * `retryable` says whether trying the same work again can help (a transient fault) or not (bad input,
 * an unparseable file, a missing object).
 */
export class LakeferryError extends Error {
  readonly code: string;
  readonly retryable: boolean;

  constructor(code: string, message: string, options: { retryable: boolean; cause?: unknown }) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable;
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
