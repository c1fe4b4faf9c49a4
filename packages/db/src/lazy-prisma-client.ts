import type pg from "pg";
import type { PrismaClient } from "./generated/prisma/client.ts";

/** A Prisma client that is created on its first call, and whether (and how) to disconnect it. */
export interface LazyPrismaClient {
  /** Stands in for the client: each call on it (`client.run.findMany(…)`, `client.$transaction(…)`) awaits the real client first. */
  client: PrismaClient;
  /** Disconnects the real client if it was ever created. */
  disconnect(): Promise<void>;
}

/** Methods that return synchronously on a real client: the stand-in cannot offer them. */
const SYNCHRONOUS = new Set(["$on", "$extends", "$use"]);

/**
 * A stand-in for a Prisma client over `pool` that imports Prisma (its runtime, the generated client and the
 * pg adapter) and creates the client on the first call made through it. Every method of the stand-in
 * returns a Promise, as the real client's do (Prisma's own are lazy "PrismaPromises"; these run at once,
 * so the array form of `$transaction` is not supported; its callback form is).
 */
export function lazyPrismaClient(pool: pg.Pool, schema: string): LazyPrismaClient {
  let opening: Promise<PrismaClient> | undefined;
  const real = (): Promise<PrismaClient> =>
    (opening ??= import("./open-prisma-client.ts").then(({ openPrismaClient }) =>
      openPrismaClient(pool, schema),
    ));
  const call =
    (path: readonly string[]) =>
    async (...args: unknown[]): Promise<unknown> => {
      const client = (await real()) as unknown as Record<string, Record<string, unknown>>;
      const owner: Record<string, unknown> = path.length === 1 ? client : client[path[0]!]!;
      const method = owner[path.at(-1)!] as (...a: unknown[]) => unknown;
      return method.apply(owner, args);
    };
  const models = new Map<string, unknown>();
  const client = new Proxy({} as PrismaClient, {
    get(_, name) {
      // Not a thenable: `await db.prisma` must not call it.
      if (typeof name !== "string" || name === "then") return undefined;
      if (SYNCHRONOUS.has(name)) {
        return () => {
          throw new Error(`db.prisma.${name} is not offered: the client is created on its first call`);
        };
      }
      if (name.startsWith("$")) return call([name]);
      let model = models.get(name);
      if (model === undefined) {
        model = new Proxy(
          {},
          { get: (__, method) => (typeof method === "string" ? call([name, method]) : undefined) },
        );
        models.set(name, model);
      }
      return model;
    },
  });
  return {
    client,
    async disconnect() {
      if (opening) await (await opening).$disconnect();
    },
  };
}
