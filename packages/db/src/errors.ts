import { LakeferryError } from "@lakeferry/core";

/**
 * SQLSTATE codes that mean the server cannot serve us now, whatever we send: it is shutting down,
 * restarting or recovering, out of connection slots, read-only after a failover, or refusing our
 * credentials. Class 08 (connection exception) counts too.
 */
const UNAVAILABLE_SQLSTATES = new Set([
  "25006", // read_only_sql_transaction: a standby (or a primary demoted by a failover) answered
  "53300", // too_many_connections
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now (starting up, recovering)
  "28000", // invalid_authorization_specification (pg_hba refuses us)
  "28P01", // invalid_password: a rotated password
]);

/** SQLSTATE codes after which the same statement may succeed if simply run again: it met other work. */
const CONFLICT_SQLSTATES = new Set([
  "40001", // serialization_failure
  "40P01", // deadlock_detected
  "55P03", // lock_not_available (lock_timeout, NOWAIT)
]);

/** query_canceled: statement_timeout ran out, or an administrator cancelled the statement. */
const QUERY_CANCELED = "57014";

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

/**
 * Prisma error codes for a server that cannot be reached or refuses us: authentication failed (P1000),
 * unreachable (P1001), timed out (P1002, P1008), connection closed (P1017), no pooled connection in time
 * (P2024).
 */
const UNAVAILABLE_PRISMA_CODES = new Set(["P1000", "P1001", "P1002", "P1008", "P1017", "P2024"]);
/** Prisma's write conflict or deadlock. */
const CONFLICT_PRISMA_CODE = "P2034";

/**
 * A database operation failed. `code` says how:
 * - `DB_UNAVAILABLE`: the server could not be reached, dropped the connection, is shutting down or
 *   recovering, has no connection slot left, is read-only (a failover), or refused our credentials.
 *   Retryable, with `outage: "postgres"`.
 * - `DB_TIMEOUT`: the statement was cancelled (SQLSTATE 57014: `statement_timeout`, or an administrator).
 *   Retryable, with `outage: "postgres"`: the server is too slow or too locked up to serve us now.
 * - `DB_CONFLICT`: a serialization failure, deadlock or lock timeout; running the operation again is safe.
 *   Retryable, no outage.
 * - `DB_ERROR`: anything else (a bug, a constraint). Not retryable.
 *
 * `sqlState` is Postgres's SQLSTATE when the server reported one.
 */
export class DatabaseError extends LakeferryError {
  /** Postgres SQLSTATE (e.g. `40P01`), when the server answered with an error. */
  readonly sqlState: string | undefined;

  constructor(
    code: "DB_UNAVAILABLE" | "DB_TIMEOUT" | "DB_CONFLICT" | "DB_ERROR",
    message: string,
    options: { sqlState?: string | undefined; cause?: unknown },
  ) {
    const outage = code === "DB_UNAVAILABLE" || code === "DB_TIMEOUT";
    super(code, message, {
      retryable: code !== "DB_ERROR",
      cause: options.cause,
      ...(outage ? { outage: "postgres" as const } : {}),
    });
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
      // Before the SQLSTATE test: EPIPE has a SQLSTATE's shape.
      if (CONNECTION_ERRNOS.has(code)) facts.errno ??= code;
      else if (/^[0-9A-Z]{5}$/.test(code) && !code.startsWith("P")) facts.sqlState ??= code;
      else if (/^P\d{4}$/.test(code)) facts.prismaCode ??= code;
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
        /DatabaseNotReachable|ConnectionClosed|SocketTimeout|TooManyConnections|AuthenticationFailed/.test(
          adapterCause.kind,
        )
      ) {
        facts.connectionLost = true;
      }
    }
    const message = typeof e.message === "string" ? e.message : "";
    // pg's own wording for a lost connection, and pg-pool's for no connection within connectionTimeoutMillis.
    if (
      /Connection terminated|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(
        message,
      )
    ) {
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
  const detail = withoutPrismaInvocation(error instanceof Error ? error.message : String(error));
  const message = `${operation}: ${detail}`;
  const sqlState = facts.sqlState;
  const options = { sqlState, cause: error };
  if (
    (sqlState !== undefined && CONFLICT_SQLSTATES.has(sqlState)) ||
    facts.prismaCode === CONFLICT_PRISMA_CODE
  ) {
    return new DatabaseError("DB_CONFLICT", message, options);
  }
  if (sqlState === QUERY_CANCELED) return new DatabaseError("DB_TIMEOUT", message, options);
  if (
    facts.connectionLost ||
    facts.errno !== undefined ||
    (sqlState !== undefined && (sqlState.startsWith("08") || UNAVAILABLE_SQLSTATES.has(sqlState))) ||
    (facts.prismaCode !== undefined && UNAVAILABLE_PRISMA_CODES.has(facts.prismaCode))
  ) {
    return new DatabaseError("DB_UNAVAILABLE", message, options);
  }
  return new DatabaseError("DB_ERROR", message, options);
}

/**
 * Prisma's message without its "Invalid `db.prisma.x.findMany()` invocation in <file>" preamble and the
 * excerpt of our source it quotes: what reaches a user is the reason alone ("Can't reach database server
 * at host:port"), not lakeferry's code.
 */
function withoutPrismaInvocation(message: string): string {
  if (!/Invalid `[^`]*` invocation/.test(message)) return message;
  const reason = message
    .split("\n")
    .filter(
      (line) =>
        line.trim() !== "" &&
        !/^\s*Invalid `[^`]*` invocation/.test(line) &&
        !/^\S+\.[cm]?[jt]s:\d+:\d+$/.test(line.trim()) &&
        !/^\s*(→\s*)?\d+\s/.test(line),
    )
    .map((line) => line.trim())
    .join(" ");
  return reason === "" ? "Prisma reported no reason" : reason;
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
