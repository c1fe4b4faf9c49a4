/**
 * Postgres failures become DatabaseErrors that say whether to retry and whether Postgres is down. Errors
 * the real server can produce cheaply come from it (statement timeout, read-only transaction, a terminated
 * backend, a refused connection); the rest are pg's and Prisma's shapes for the other SQLSTATEs.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { outageOf } from "@lakeferry/core";
import { DatabaseError, classifyDatabaseError, createDatabase, type Database } from "../src/index.ts";
import { databaseUrl, uniqueSchema } from "./helpers.ts";

/** What pg throws for an error the server reported (pg's DatabaseError carries these fields). */
const pgError = (code: string, message: string): Error =>
  Object.assign(new Error(message), { code, severity: "ERROR", name: "error" });

/** What Node's net module throws for a socket failure. */
const socketError = (code: string): Error =>
  Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code, errno: -111, syscall: "connect" });

/** What Prisma (7, over @prisma/adapter-pg) throws for a driver error: the pg code in the adapter's cause. */
const prismaDriverError = (cause: Record<string, unknown>): Error =>
  Object.assign(new Error("Invalid `prisma.file.findMany()` invocation: …"), {
    name: "PrismaClientKnownRequestError",
    code: "P2010",
    meta: { driverAdapterError: { name: "DriverAdapterError", cause } },
  });

let db: Database;

beforeAll(() => {
  db = createDatabase({ connectionString: databaseUrl(), schema: uniqueSchema("errors"), maxConnections: 2 });
});

afterAll(async () => {
  await db?.close();
});

/** Runs statements on one connection of its own and returns what the last one threw. */
async function failureOf(...statements: string[]): Promise<unknown> {
  const connection = await db.pool.connect();
  let failure: unknown;
  try {
    for (const statement of statements) await connection.query(statement);
  } catch (error) {
    failure = error;
  } finally {
    // Session settings (and a connection the server may have closed) must not go back to the pool.
    connection.release(true);
  }
  if (failure === undefined) throw new Error("expected a statement to fail");
  return failure;
}

describe("from the real server", () => {
  it("a statement timeout (57014) is DB_TIMEOUT: retryable, outage postgres", async () => {
    const error = classifyDatabaseError(
      await failureOf("SET statement_timeout = 50", "SELECT pg_sleep(5)"),
      "claimFiles",
    );
    expect(error).toBeInstanceOf(DatabaseError);
    expect(error).toMatchObject({
      code: "DB_TIMEOUT",
      sqlState: "57014",
      retryable: true,
      outage: "postgres",
    });
    expect(error.message).toMatch(/^claimFiles: canceling statement due to statement timeout/);
  });

  it("a statement timeout through Prisma is classified the same", async () => {
    const thrown = await db.prisma
      .$transaction(async (tx) => {
        await tx.$executeRawUnsafe("SET LOCAL statement_timeout = 50");
        await tx.$queryRawUnsafe("SELECT pg_sleep(5)");
      })
      .catch((e: unknown) => e);
    expect(classifyDatabaseError(thrown, "listFiles")).toMatchObject({
      code: "DB_TIMEOUT",
      sqlState: "57014",
      outage: "postgres",
    });
  });

  it("a write in a read-only transaction (25006, as after a failover) is DB_UNAVAILABLE, outage postgres", async () => {
    const error = classifyDatabaseError(
      await failureOf("BEGIN READ ONLY", `CREATE SCHEMA ${uniqueSchema("ro")}`),
      "recordOutcomes",
    );
    expect(error).toMatchObject({
      code: "DB_UNAVAILABLE",
      sqlState: "25006",
      retryable: true,
      outage: "postgres",
    });
  });

  it("a terminated backend (57P01 admin_shutdown) is DB_UNAVAILABLE, outage postgres", async () => {
    const thrown = await failureOf("SELECT pg_terminate_backend(pg_backend_pid())");
    const error = classifyDatabaseError(thrown, "renewLeases");
    expect(error).toMatchObject({
      code: "DB_UNAVAILABLE",
      sqlState: "57P01",
      retryable: true,
      outage: "postgres",
    });
    expect(outageOf(error)).toBe("postgres");
  });

  it("a refused connection is DB_UNAVAILABLE, outage postgres, on the pg and the Prisma paths", async () => {
    const down = createDatabase({
      connectionString: "postgresql://nobody:x@127.0.0.1:1/none",
      schema: "nowhere",
    });
    try {
      for (const attempt of [
        () => down.pool.query("SELECT 1"),
        () => down.prisma.$queryRawUnsafe("SELECT 1"),
        () => down.prisma.processedFile.findMany({ where: { ingestionId: 1n } }),
      ]) {
        const error = classifyDatabaseError(await attempt().catch((e: unknown) => e), "statusCounts");
        expect(error).toMatchObject({ code: "DB_UNAVAILABLE", retryable: true, outage: "postgres" });
        // What a user reads is the reason, not Prisma's "invocation in <file>" and an excerpt of our code.
        expect(error.message).not.toMatch(/invocation|\.ts:\d+|\n/);
        expect(error.message).toMatch(/^statusCounts: .*(127\.0\.0\.1:1|ECONNREFUSED)/);
      }
    } finally {
      await down.close();
    }
  });

  it("a unique violation (23505) is about the data: DB_ERROR, no outage", async () => {
    const thrown = await failureOf(
      "CREATE TEMP TABLE t (id int PRIMARY KEY)",
      "INSERT INTO t VALUES (1)",
      "INSERT INTO t VALUES (1)",
    );
    expect(classifyDatabaseError(thrown, "openBatch")).toMatchObject({
      code: "DB_ERROR",
      sqlState: "23505",
      retryable: false,
      outage: undefined,
    });
  });
});

describe("classifyDatabaseError rules", () => {
  it.each([
    ["08006", "connection_failure"],
    ["08001", "sqlclient_unable_to_establish_sqlconnection"],
    ["57P01", "terminating connection due to administrator command"],
    ["57P02", "terminating connection because of crash of another server process"],
    ["57P03", "the database system is starting up"],
    ["53300", "sorry, too many clients already"],
    ["25006", "cannot execute INSERT in a read-only transaction"],
    ["28P01", 'password authentication failed for user "lakeferry"'],
  ])("SQLSTATE %s (%s) is DB_UNAVAILABLE with outage postgres", (code, message) => {
    const error = classifyDatabaseError(pgError(code, message), "op");
    expect(error).toMatchObject({
      code: "DB_UNAVAILABLE",
      sqlState: code,
      retryable: true,
      outage: "postgres",
    });
  });

  it("SQLSTATE 57014 is DB_TIMEOUT with outage postgres", () => {
    expect(
      classifyDatabaseError(pgError("57014", "canceling statement due to user request"), "op"),
    ).toMatchObject({
      code: "DB_TIMEOUT",
      retryable: true,
      outage: "postgres",
    });
  });

  it.each([
    ["40001", "could not serialize access due to concurrent update"],
    ["40P01", "deadlock detected"],
    ["55P03", 'could not obtain lock on row in relation "files"'],
  ])("SQLSTATE %s (%s) is a conflict: retryable, no outage", (code, message) => {
    expect(classifyDatabaseError(pgError(code, message), "op")).toMatchObject({
      code: "DB_CONFLICT",
      retryable: true,
      outage: undefined,
    });
  });

  it.each(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH", "ENOTFOUND"])(
    "socket error %s is DB_UNAVAILABLE with outage postgres, also when wrapped",
    (code) => {
      const error = classifyDatabaseError(socketError(code), "op");
      expect(error).toMatchObject({
        code: "DB_UNAVAILABLE",
        retryable: true,
        outage: "postgres",
        sqlState: undefined,
      });
      const wrapped = classifyDatabaseError(new Error("query failed", { cause: socketError(code) }), "op");
      expect(wrapped).toMatchObject({ code: "DB_UNAVAILABLE", outage: "postgres" });
    },
  );

  it.each([
    "Connection terminated unexpectedly",
    "timeout exceeded when trying to connect",
    "Client has encountered a connection error and is not queryable",
  ])("pg's '%s' is DB_UNAVAILABLE", (message) => {
    expect(classifyDatabaseError(new Error(message), "op")).toMatchObject({
      code: "DB_UNAVAILABLE",
      outage: "postgres",
    });
  });

  it("Prisma's driver-adapter errors are read for their pg code or kind", () => {
    const timeout = prismaDriverError({ kind: "postgres", code: "57014", originalCode: "57014" });
    expect(classifyDatabaseError(timeout, "op")).toMatchObject({ code: "DB_TIMEOUT", outage: "postgres" });
    const readOnly = prismaDriverError({ kind: "postgres", code: "25006", originalCode: "25006" });
    expect(classifyDatabaseError(readOnly, "op")).toMatchObject({
      code: "DB_UNAVAILABLE",
      outage: "postgres",
    });
    for (const kind of [
      "DatabaseNotReachable",
      "ConnectionClosed",
      "SocketTimeout",
      "AuthenticationFailed",
    ]) {
      expect(classifyDatabaseError(prismaDriverError({ kind }), "op")).toMatchObject({
        code: "DB_UNAVAILABLE",
        outage: "postgres",
      });
    }
    const tooMany = prismaDriverError({
      kind: "TooManyConnections",
      originalCode: "53300",
      cause: "too many",
    });
    expect(classifyDatabaseError(tooMany, "op")).toMatchObject({ code: "DB_UNAVAILABLE", sqlState: "53300" });
  });

  it.each(["P1001", "P1002", "P1008", "P1017", "P2024", "P1000"])(
    "Prisma's %s (server unreachable, timed out or refusing) is DB_UNAVAILABLE",
    (code) => {
      const error = Object.assign(new Error("prisma"), { name: "PrismaClientKnownRequestError", code });
      expect(classifyDatabaseError(error, "op")).toMatchObject({
        code: "DB_UNAVAILABLE",
        outage: "postgres",
      });
    },
  );

  it("anything else is DB_ERROR, not retryable, no outage", () => {
    expect(classifyDatabaseError(pgError("42P01", 'relation "files" does not exist'), "op")).toMatchObject({
      code: "DB_ERROR",
      retryable: false,
      outage: undefined,
    });
    expect(classifyDatabaseError(new Error("bug"), "op")).toMatchObject({
      code: "DB_ERROR",
      outage: undefined,
    });
  });
});
