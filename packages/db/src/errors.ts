import { LakeferryError } from "@lakeferry/core";

/** SQLSTATE codes after which the same statement may succeed if simply run again. */
const TRANSIENT_SQLSTATES = new Set([
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "53300", // too_many_connections
  "55P03", // lock_not_available
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
]);

/** Node socket errors that mean the server could not be reached or went away. */
const CONNECTION_ERRNOS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
]);

/** Prisma error codes for an unreachable server, a timeout, or a write conflict / deadlock. */
const TRANSIENT_PRISMA_CODES = new Set(["P1001", "P1002", "P1008", "P1017", "P2024", "P2034"]);

/**
 * A database operation failed. `code` is `DB_UNAVAILABLE` (the server could not be reached or dropped the
 * connection), `DB_CONFLICT` (a serialization failure or deadlock; running the operation again is safe)
 * or `DB_ERROR` (anything else: a bug or a constraint, not worth retrying). `sqlState` is Postgres's
 * SQLSTATE when the server reported one.
 */
export class DatabaseError extends LakeferryError {
  /** Postgres SQLSTATE (e.g. `40P01`), when the server answered with an error. */
  readonly sqlState: string | undefined;

  constructor(
    code: "DB_UNAVAILABLE" | "DB_CONFLICT" | "DB_ERROR",
    message: string,
    options: { retryable: boolean; sqlState?: string; cause?: unknown },
  ) {
    super(code, message, { retryable: options.retryable, cause: options.cause });
    this.sqlState = options.sqlState;
  }
}

/** A migration cannot be applied: its file changed after it was applied, or an earlier run of it failed. */
export class MigrationError extends LakeferryError {
  /** The migration directory name, e.g. `20261129000000_init`. */
  readonly migration: string;

  constructor(migration: string, message: string, cause?: unknown) {
    super("MIGRATION_REFUSED", message, { retryable: false, cause });
    this.migration = migration;
  }
}

interface ErrorFacts {
  sqlState?: string;
  errno?: string;
  prismaCode?: string;
  connectionLost: boolean;
}

/** Walks an error and its causes (pg, Prisma's driver-adapter wrapping, Node socket errors) for facts. */
function collectFacts(error: unknown): ErrorFacts {
  const facts: ErrorFacts = { connectionLost: false };
  let current: unknown = error;
  for (let depth = 0; depth < 6 && current !== null && typeof current === "object"; depth++) {
    const e = current as Record<string, unknown>;
    const code = typeof e.code === "string" ? e.code : undefined;
    if (code !== undefined) {
      if (/^[0-9A-Z]{5}$/.test(code) && !code.startsWith("P")) facts.sqlState ??= code;
      else if (/^P\d{4}$/.test(code)) facts.prismaCode ??= code;
      else if (CONNECTION_ERRNOS.has(code)) facts.errno ??= code;
    }
    // Prisma's driver adapters report the underlying pg error as { kind: "postgres", code } or a kind name.
    const meta = e.meta as Record<string, unknown> | undefined;
    const adapterError = (meta?.driverAdapterError ?? e.driverAdapterError) as
      { cause?: unknown } | undefined;
    const adapterCause = adapterError?.cause as Record<string, unknown> | undefined;
    if (adapterCause) {
      if (typeof adapterCause.originalCode === "string") facts.sqlState ??= adapterCause.originalCode;
      if (typeof adapterCause.code === "string" && /^[0-9A-Z]{5}$/.test(adapterCause.code)) {
        facts.sqlState ??= adapterCause.code;
      }
      if (
        typeof adapterCause.kind === "string" &&
        /DatabaseNotReachable|ConnectionClosed|SocketTimeout|TooManyConnections/.test(adapterCause.kind)
      ) {
        facts.connectionLost = true;
      }
    }
    const message = typeof e.message === "string" ? e.message : "";
    if (/Connection terminated|connection timeout|Client has encountered a connection error/i.test(message)) {
      facts.connectionLost = true;
    }
    current = e.cause;
  }
  return facts;
}

/**
 * Turns anything a database call threw into a {@link DatabaseError} (errors lakeferry raised on purpose
 * pass through unchanged). This is the one place Postgres failures are classified.
 */
export function classifyDatabaseError(error: unknown, operation: string): LakeferryError {
  if (error instanceof LakeferryError) return error;
  const facts = collectFacts(error);
  const detail = error instanceof Error ? error.message : String(error);
  const message = `${operation}: ${detail}`;
  const sqlState = facts.sqlState;
  if (sqlState === "40001" || sqlState === "40P01" || facts.prismaCode === "P2034") {
    return new DatabaseError("DB_CONFLICT", message, { retryable: true, sqlState, cause: error });
  }
  if (
    facts.connectionLost ||
    facts.errno !== undefined ||
    (sqlState !== undefined && (sqlState.startsWith("08") || TRANSIENT_SQLSTATES.has(sqlState))) ||
    (facts.prismaCode !== undefined && TRANSIENT_PRISMA_CODES.has(facts.prismaCode))
  ) {
    return new DatabaseError("DB_UNAVAILABLE", message, { retryable: true, sqlState, cause: error });
  }
  return new DatabaseError("DB_ERROR", message, { retryable: false, sqlState, cause: error });
}

/** Whether a failure was a deadlock or serialization failure, after which an atomic operation may rerun. */
function isConflict(error: unknown): boolean {
  return error instanceof DatabaseError && error.code === "DB_CONFLICT";
}

/**
 * Runs one database operation, classifying its failure. An operation that is atomic (one statement or
 * one transaction) is rerun once after a deadlock or serialization failure.
 */
export async function runOperation<T>(
  operation: string,
  body: () => Promise<T>,
  options: { retryConflictOnce: boolean } = { retryConflictOnce: true },
): Promise<T> {
  try {
    return await body();
  } catch (first) {
    const classified = classifyDatabaseError(first, operation);
    if (!options.retryConflictOnce || !isConflict(classified)) throw classified;
    try {
      return await body();
    } catch (second) {
      throw classifyDatabaseError(second, operation);
    }
  }
}
