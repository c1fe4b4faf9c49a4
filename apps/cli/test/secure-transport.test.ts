/**
 * lakeferry against a Postgres and a Redis that demand TLS and a password (`scripts/services.sh up secure`:
 * pg_hba `hostssl … scram-sha-256` only; redis-server `--port 0 --tls-port … --requirepass`), both with a
 * certificate from a CA of the script's own. The CLI runs as its own process, as a user runs it, with
 * DATABASE_URL `sslmode=verify-full&sslrootcert=…`, REDIS_URL `rediss://:password@…` and NODE_EXTRA_CA_CERTS.
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase } from "@lakeferry/db";
import { cli } from "./support.ts";

let databaseUrl: string;
let redisUrl: string;
let caFile: string;
let dir: string;
let env: Record<string, string>;
const id = randomBytes(4).toString("hex");
const schema = `tls_${id}`;
const prefix = `tls-${id}`;

function secureEnv(name: string): string {
  const value = process.env[name];
  if (!value)
    throw new Error(`${name} is not set: run eval "$(bash scripts/services.sh env)" before the tests`);
  return value;
}

/** The error lines a failed command wrote (at most two, each naming what failed and what to do). */
function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.trim() !== "");
}

beforeAll(async () => {
  execFileSync("bash", [secureEnv("LAKEFERRY_SERVICES_SCRIPT"), "up", "secure"], {
    stdio: "inherit",
    timeout: 300_000,
  });
  databaseUrl = secureEnv("LAKEFERRY_SECURE_DATABASE_URL");
  redisUrl = secureEnv("LAKEFERRY_SECURE_REDIS_URL");
  caFile = secureEnv("LAKEFERRY_TLS_CA_FILE");
  dir = await mkdtemp(join(tmpdir(), "lakeferry-tls-"));
  await writeFile(join(dir, "a.json"), '{"id":1}\n');
  await writeFile(
    join(dir, "ingestion.yaml"),
    `name: tls\nsource: file://${dir}/\nformat: json\npattern: "*.json"\ntable: lake.tls_${id}.t\n`,
  );
  env = {
    ...(process.env as Record<string, string>),
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    NODE_EXTRA_CA_CERTS: caFile,
    LAKEFERRY_DB_SCHEMA: schema,
    LAKEFERRY_QUEUE_PREFIX: prefix,
  };
}, 320_000);

afterAll(async () => {
  const db = createDatabase({ connectionString: databaseUrl, maxConnections: 1 });
  await db.pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await db.close();
  await rm(dir, { recursive: true, force: true });
});

describe("TLS and passwords", () => {
  it("migrates, applies an ingestion and enqueues a file over verified TLS with passwords", async () => {
    expect(await cli(["migrate"], env)).toMatchObject({ code: 0 });
    expect(await cli(["ingestion", "apply", "-f", join(dir, "ingestion.yaml")], env)).toMatchObject({
      code: 0,
    });
    const enqueued = await cli(["enqueue", "tls", "a.json"], env);
    expect(enqueued).toMatchObject({ code: 0 });
    expect(enqueued.stdout).toContain("accepted 1 file(s)");

    // Both connections really were TLS: the server's own view, and the job in the TLS-only Redis.
    const db = createDatabase({ connectionString: databaseUrl, schema, maxConnections: 1 });
    try {
      const { rows } = await db.pool.query<{ ssl: boolean; files: number }>(
        `SELECT (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()) AS ssl,
                (SELECT count(*)::int FROM processed_files) AS files`,
      );
      expect(rows[0]).toEqual({ ssl: true, files: 1 });
    } finally {
      await db.close();
    }
    const redis = new Redis(redisUrl, { tls: { ca: readFileSync(caFile) }, maxRetriesPerRequest: 1 });
    try {
      expect(await redis.keys(`${prefix}:lakeferry-ingest:file-*`)).toHaveLength(1);
      for (const key of await redis.keys(`${prefix}:*`)) await redis.del(key);
    } finally {
      await redis.quit();
    }
  });

  it("refuses a wrong password, plaintext and an untrusted certificate, each in one line saying what to fix", async () => {
    const wrongPassword = new URL(databaseUrl);
    wrongPassword.password = "wrong";
    const plaintext = new URL(databaseUrl);
    plaintext.search = "?sslmode=disable";
    const noCa = new URL(databaseUrl);
    noCa.searchParams.delete("sslrootcert");
    const cases: [Record<string, string>, RegExp][] = [
      [{ DATABASE_URL: wrongPassword.toString() }, /DB_UNAVAILABLE: migrate: password authentication failed/],
      [
        { DATABASE_URL: plaintext.toString() },
        /no encryption; the server takes TLS only: add sslmode=verify-full/,
      ],
      [
        { DATABASE_URL: noCa.toString(), NODE_EXTRA_CA_CERTS: "" },
        /certificate.*not trusted: give its CA with sslrootcert=/,
      ],
    ];
    const redisCases: [Record<string, string>, RegExp][] = [
      [
        { REDIS_URL: redisUrl.replace(/:[^:@]*@/, ":wrong@") },
        /REDIS_UNAVAILABLE: cannot use Redis at rediss:\/\/127\.0\.0\.1:\d+: WRONGPASS .*the password is wrong/,
      ],
      [{ REDIS_URL: redisUrl.replace("rediss://", "redis://") }, /if it takes TLS only, use rediss:\/\//],
      [{ NODE_EXTRA_CA_CERTS: "" }, /self-signed certificate in certificate chain; .*NODE_EXTRA_CA_CERTS=/],
    ];
    const results = await Promise.all([
      ...cases.map(([overrides]) => cli(["migrate"], { ...env, ...overrides })),
      ...redisCases.map(([overrides]) => cli(["enqueue", "tls", "a.json"], { ...env, ...overrides })),
    ]);
    [...cases, ...redisCases].forEach(([, expected], i) => {
      const result = results[i]!;
      expect(result.code).not.toBe(0);
      const lines = errorLines(result.stderr);
      expect(lines.length).toBeLessThanOrEqual(2);
      expect(lines.join("\n")).toMatch(expected);
      expect(result.stderr).not.toContain("lakeferry-secret");
    });
  });
});
