import type pg from "pg";
import { PrismaPg } from "@prisma/adapter-pg";
import { PrismaClient } from "./generated/prisma/client.ts";

/**
 * A Prisma client over `pool`, bound to `schema`. Only `lazyPrismaClient` imports this module (dynamically):
 * loading Prisma's runtime and the generated client costs about 0.3 s of CPU, which commands and processes
 * that never use Prisma should not pay at startup.
 */
export function openPrismaClient(pool: pg.Pool, schema: string): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg(pool, { schema }) });
}
