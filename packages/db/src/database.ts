import pg from "pg";
import { InvalidInputError } from "@lakeferry/core";
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
  /** A postgres:// connection string. */
  connectionString: string;
  /**
   * Postgres schema holding the tables (created by `migrate`). Default `public`. Tests give each test its
   * own schema for isolation. Letters, digits and underscores only.
   */
  schema?: string;
  /** Pool size. Default 10. */
  maxConnections?: number;
}

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Opens a pool (lazily connecting) and a Prisma client bound to `schema` (created on first use). */
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
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: maxConnections,
    // Every connection resolves unqualified table names in the chosen schema.
    options: `-c search_path="${schema}"`,
    application_name: "lakeferry",
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
