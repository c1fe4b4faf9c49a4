/**
 * Shared by the API tests: an API server on an ephemeral port against the real Postgres, Redis and Spark,
 * in a Postgres schema, BullMQ prefix and source folder of its own; and a small HTTP client.
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createLogger } from "@lakeferry/core";
import { createDatabase, migrate, type Database } from "@lakeferry/db";
import { ApiKeys, createApiServer, type ApiServer } from "../src/index.ts";

/** A variable the services script exports; the tests cannot run without it. */
export function serviceEnv(name: "DATABASE_URL" | "REDIS_URL" | "SPARK_REMOTE"): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run eval "$(bash scripts/services.sh env)" before the tests`);
  }
  return value;
}

/** One token per role. */
export const TOKENS = {
  reader: `reader-${randomBytes(12).toString("hex")}`,
  producer: `producer-${randomBytes(12).toString("hex")}`,
  operator: `operator-${randomBytes(12).toString("hex")}`,
} as const;

export interface ApiSandbox {
  id: string;
  /** Postgres schema (LAKEFERRY_DB_SCHEMA). */
  schema: string;
  /** BullMQ prefix (LAKEFERRY_QUEUE_PREFIX). */
  prefix: string;
  /** Temp folder; `source/` holds the landing files. */
  dir: string;
  source: string;
  /** file:// URI of `source/`, with a trailing slash. */
  sourceUri: string;
  /** Direct Postgres access to the sandbox's schema, for set-up and assertions. */
  db: Database;
  server: ApiServer;
  /** `http://127.0.0.1:PORT`. */
  url: string;
  close(passed: boolean): Promise<void>;
}

/** Starts an API on a fresh, migrated schema and its own queue prefix, keys for every role. */
export async function startApi(
  label: string,
  options: {
    sparkRemote?: string;
    redisUrl?: string;
    readyTimeoutMs?: number;
    redisTimeoutMs?: number;
    /** The API's environment (its storage settings and access policy). Default: this process's. */
    env?: Record<string, string | undefined>;
  } = {},
): Promise<ApiSandbox> {
  const id = randomBytes(4).toString("hex");
  const schema = `api_${label.replace(/[^a-z0-9]/g, "_")}_${id}`;
  const prefix = `api-${label}-${id}`;
  const dir = await mkdtemp(join(tmpdir(), `lakeferry-api-${label}-`));
  const source = join(dir, "source");
  await mkdir(source, { recursive: true });
  const db = createDatabase({ connectionString: serviceEnv("DATABASE_URL"), schema, maxConnections: 2 });
  await migrate(db);
  const server = createApiServer({
    databaseUrl: serviceEnv("DATABASE_URL"),
    redisUrl: options.redisUrl ?? serviceEnv("REDIS_URL"),
    sparkRemote: options.sparkRemote ?? serviceEnv("SPARK_REMOTE"),
    dbSchema: schema,
    queuePrefix: prefix,
    keys: ApiKeys.parse({
      keys: Object.entries(TOKENS)
        .map(([role, token]) => `${role}:${token}`)
        .join(","),
    }),
    logger: createLogger({ name: "api-test", level: "silent" }),
    env: options.env ?? process.env,
    maxConnections: 4,
    ...(options.readyTimeoutMs !== undefined ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
    ...(options.redisTimeoutMs !== undefined ? { redisTimeoutMs: options.redisTimeoutMs } : {}),
  });
  const { url } = await server.start({ host: "127.0.0.1", port: 0 });
  return {
    id,
    schema,
    prefix,
    dir,
    source,
    sourceUri: `file://${source}/`,
    db,
    server,
    url,
    async close(passed) {
      await server.close({ timeoutMs: 1_000 });
      // A failed test's state stays for inspection.
      if (passed) {
        await db.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
        await rm(dir, { recursive: true, force: true });
      }
      await db.close();
    },
  };
}

export interface Answer<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  contentType: string;
  body: T;
  text: string;
}

/** One HTTP request; JSON bodies are sent and parsed. */
export async function call<T = Record<string, unknown>>(
  box: ApiSandbox,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
): Promise<Answer<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  let payload: string | undefined;
  if (options.body !== undefined || options.rawBody !== undefined) {
    headers["content-type"] ??= "application/json";
    payload = options.rawBody ?? JSON.stringify(options.body);
  }
  const response = await fetch(`${box.url}${path}`, { method, headers, body: payload });
  const text = await response.text();
  const contentType = response.headers.get("content-type") ?? "";
  let body: unknown = text;
  if (/json/.test(contentType)) body = JSON.parse(text);
  return { status: response.status, headers: response.headers, contentType, body: body as T, text };
}

/** Writes JSON-lines files `name` under the sandbox's source folder; returns their URIs. */
export async function landFiles(box: ApiSandbox, names: string[]): Promise<string[]> {
  await Promise.all(
    names.map(async (name) => {
      const path = join(box.source, name);
      await mkdir(join(path, ".."), { recursive: true });
      await writeFile(path, `${JSON.stringify({ id: 1, name })}\n`);
      // Written whole: a minute old, so the local source's listing.minAgeMs (5 s) does not defer it.
      const past = new Date(Date.now() - 60_000);
      await utimes(path, past, past);
    }),
  );
  return names.map((name) => `${box.sourceUri}${name}`);
}

/** An ingestion spec (JSON) for the sandbox's source folder. */
export function ingestionSpec(
  box: ApiSandbox,
  name: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    name,
    source: box.sourceUri,
    format: "json",
    schema: "id BIGINT, name STRING",
    pattern: "**/*.json",
    table: `lake.api_${box.id}.t`,
    retry: { attempts: 2, backoffMs: 100 },
    ...extra,
  };
}
