import pg from "pg";
import { InvalidInputError } from "@lakeferry/core";
import { DatabaseError } from "./errors.ts";
import type { PrismaClient } from "./generated/prisma/client.ts";
import { lazyPrismaClient } from "./lazy-prisma-client.ts";

export type { PrismaClient };

/** A connection to lakeferry's tracking database: one pg pool, shared by the Prisma client. */
export interface Database {
  /** The pg pool every hot-path statement runs on. Its connections use `schema` as search_path. */
  pool: pg.Pool;
  /**
   * Prisma client over the same pool, for apps' and tests' ad-hoc reads. Prisma is imported and the client
   * created on its first call (about 0.3 s of CPU, and Prisma plans each new query shape on first use), so
   * a process that never calls it never loads it; lakeferry's own statements are plain SQL on `pool`.
   * Every call returns a Promise; `$transaction` takes a callback (not an array of queries).
   */
  prisma: PrismaClient;
  /** The Postgres schema holding lakeferry's tables. */
  schema: string;
  /** Disconnects Prisma (if it was used) and ends the pool. */
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /**
   * A postgres:// connection string. TLS is set in it as libpq does (`sslmode=verify-full&sslrootcert=…`).
   * `pgbouncer=true` says a pooler in transaction mode (PgBouncer's `pool_mode = transaction`) stands in
   * front: see {@link createDatabase}. The flag is lakeferry's (Prisma's spelling) and not sent to the server.
   */
  connectionString: string;
  /**
   * Postgres schema holding the tables (created by `migrate`). Default `public`. Tests give each test its
   * own schema for isolation. Letters, digits and underscores only.
   */
  schema?: string;
  /** Pool size: connections this process opens at most. Default 10. */
  maxConnections?: number;
}

/**
 * Reads and removes the `pgbouncer` flag of a connection string: whether a transaction-mode pooler stands
 * between lakeferry and Postgres.
 */
function takePoolerFlag(connectionString: string): { connectionString: string; pooled: boolean } {
  let url: URL;
  try {
    url = new URL(connectionString);
  } catch {
    // pg reports a malformed string itself, with its own wording, on the first query.
    return { connectionString, pooled: false };
  }
  const flag = url.searchParams.get("pgbouncer");
  if (flag === null) return { connectionString, pooled: false };
  if (flag !== "true" && flag !== "false") {
    throw new InvalidInputError("connectionString", `pgbouncer=${flag} must be true or false`);
  }
  url.searchParams.delete("pgbouncer");
  return { connectionString: url.toString(), pooled: flag === "true" };
}

/**
 * Where unqualified table names resolve on a connection: the first schema of its search_path that exists,
 * with `schema` counted as existing (before `migrate` creates it). Returns the schema names resolve to
 * instead, or undefined when it is `schema`.
 */
async function schemaMismatch(client: pg.ClientBase, schema: string): Promise<string | undefined> {
  const { rows } = await client.query<{ path: string; user: string; existing: string[] }>(
    `SELECT current_setting('search_path') AS path, current_user AS user, current_schemas(false) AS existing`,
  );
  const { path, user, existing } = rows[0]!;
  const entries = path
    .split(",")
    .map((entry) => entry.trim().replace(/^"(.*)"$/, "$1"))
    .map((entry) => (entry === "$user" ? user : entry));
  for (const entry of entries) {
    if (entry === schema) return undefined;
    if (existing.includes(entry)) return `${entry}" (search_path ${path})`;
  }
  return `nothing" (search_path ${path})`;
}

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * Opens a pool (lazily connecting) and a Prisma client bound to `schema` (created on first use).
 *
 * Each connection normally sets its search_path to `schema` with a startup parameter. Through a
 * transaction-mode pooler (`pgbouncer=true` in the connection string) it cannot: PgBouncer refuses the
 * `options` startup parameter, and a `SET` would leak to whichever client gets the server connection
 * next. There the server's own search_path must lead to `schema` (`public` by default; for another schema
 * `ALTER ROLE … IN DATABASE … SET search_path = …`, or PgBouncer's `connect_query`): each new connection
 * checks that it does, and refuses to run anything when it does not. lakeferry keeps no other session
 * state: its statements are unnamed (never server-side prepared), and its locks are rows or last one
 * transaction.
 */
export function createDatabase(options: DatabaseOptions): Database {
  const schema = options.schema ?? "public";
  if (!SCHEMA_NAME.test(schema)) {
    throw new InvalidInputError("schema", `"${schema}" must be letters, digits and underscores (at most 63)`);
  }
  if (!options.connectionString) {
    throw new InvalidInputError("connectionString", "a postgres:// connection string is required");
  }
  const maxConnections = options.maxConnections ?? 10;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new InvalidInputError("maxConnections", `must be a positive integer, got ${maxConnections}`);
  }
  const { connectionString, pooled } = takePoolerFlag(options.connectionString);
  const pool = new pg.Pool({
    connectionString,
    max: maxConnections,
    application_name: "lakeferry",
    // Every connection resolves unqualified table names in the chosen schema.
    ...(pooled
      ? {
          // pg-pool awaits this hook before lending the connection (and ends it when the hook throws); the
          // @types/pg signature says void.
          // eslint-disable-next-line @typescript-eslint/no-misused-promises
          onConnect: async (client: pg.ClientBase) => {
            const resolved = await schemaMismatch(client, schema);
            if (resolved !== undefined) {
              throw new DatabaseError(
                "DB_ERROR",
                `schema "${schema}" is not where this pooled connection (pgbouncer=true) resolves table names: ` +
                  `it resolves them to "${resolved}; set lakeferry's role search_path to ${schema} ` +
                  `(ALTER ROLE … IN DATABASE … SET search_path = ${schema}) or use schema public`,
                {},
              );
            }
          },
        }
      : { options: `-c search_path="${schema}"` }),
  });
  // An idle client losing its connection emits on the pool; without a listener that crashes the process.
  // The next query on the pool reconnects and reports its own (classified) error.
  pool.on("error", () => {});
  const prisma = lazyPrismaClient(pool, schema);
  let closing: Promise<void> | undefined;
  return {
    pool,
    prisma: prisma.client,
    schema,
    close() {
      closing ??= (async () => {
        await prisma.disconnect();
        await pool.end();
      })();
      return closing;
    },
  };
}

/** Double-quotes an SQL identifier. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/**
 * Runs `body` as one transaction on one pooled connection: COMMIT when it resolves, ROLLBACK when it throws
 * (a connection that cannot roll back is discarded, not lent out again). Errors pass through unclassified:
 * run it inside `runOperation`, which reruns the whole transaction after a deadlock or serialization failure.
 */
export async function inTransaction<T>(
  db: Database,
  body: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  const client = await db.pool.connect();
  let broken: Error | undefined;
  try {
    await client.query("BEGIN");
    const result = await body(client);
    await client.query("COMMIT");
    return result;
  } catch (error) {
    await client.query("ROLLBACK").catch((rollbackError: unknown) => {
      broken = rollbackError instanceof Error ? rollbackError : new Error(String(rollbackError));
    });
    throw error;
  } finally {
    client.release(broken);
  }
}
