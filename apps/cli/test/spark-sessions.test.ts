/**
 * Issue 7: `lakeferry sql` calls leave no Spark session behind. Spark 4.0 keeps every session's Iceberg
 * catalog, and with it one Postgres connection, open after the session is released (SPARK-54367); so the
 * CLI calls of one user join one kept session. Runs against a Spark Connect server of this test's own,
 * whose catalog connections are told apart in pg_stat_activity by its application_name.
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database } from "@lakeferry/db";
import { SparkConnectClient } from "@lakeferry/spark-connect";
import { cli, ROOT, serviceEnv, until } from "./support.ts";

const run = promisify(execFile);
const SPARK_NAME = "lakeferry-spark-sessions";
const PORT = 15022;
const REMOTE = `sc://127.0.0.1:${PORT}`;
const CALLS = 30;
const AT_ONCE = 3;

async function spark(action: "up" | "down"): Promise<void> {
  await run("bash", [join(ROOT, "scripts/services.sh"), action, "spark"], {
    env: {
      ...process.env,
      LAKEFERRY_SPARK_NAME: SPARK_NAME,
      LAKEFERRY_SPARK_PORT: String(PORT),
      LAKEFERRY_SPARK_MEMORY: "1g",
    },
    timeout: 300_000,
  });
}

describe("Spark sessions of the CLI", () => {
  const id = randomBytes(4).toString("hex");
  const table = `lake.e2e_sessions_${id}.t`;
  let stateHome: string;
  let env: Record<string, string>;
  let db: Database;
  let passed = 0;

  /** This server's catalog connections in Postgres (all idle between calls). */
  async function catalogConnections(): Promise<number> {
    const { rows } = await db.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1",
      [SPARK_NAME],
    );
    return rows[0]!.n;
  }

  /** The session id the CLI keeps for this server. */
  async function keptSessionId(): Promise<string> {
    const dir = join(stateHome, "lakeferry");
    const files = await readdir(dir);
    expect(files).toHaveLength(1);
    return (await readFile(join(dir, files[0]!), "utf8")).trim();
  }

  /** `lakeferry sql "SELECT count(*) …"` once; the count it printed. */
  async function countRows(): Promise<number> {
    const result = await cli(["sql", `SELECT count(*) AS n FROM ${table}`, "--json"], env);
    expect(result.code, result.stderr).toBe(0);
    return Number((JSON.parse(result.stdout) as { n: number }[])[0]!.n);
  }

  beforeAll(async () => {
    stateHome = await mkdtemp(join(tmpdir(), "lakeferry-sessions-"));
    env = {
      ...(process.env as Record<string, string>),
      SPARK_REMOTE: REMOTE,
      XDG_STATE_HOME: stateHome,
    };
    db = createDatabase({ connectionString: serviceEnv("DATABASE_URL"), maxConnections: 1 });
    await spark("up");
    // services.sh may report the server up just before it accepts calls.
    await until(
      "the test's Spark server to answer",
      async () => (await cli(["sql", "SELECT 1"], env)).code === 0,
      {
        timeoutMs: 120_000,
        intervalMs: 1_000,
      },
    );
    for (const statement of [
      `CREATE NAMESPACE IF NOT EXISTS lake.e2e_sessions_${id}`,
      `CREATE TABLE ${table} (id BIGINT) USING iceberg`,
      `INSERT INTO ${table} VALUES (1), (2), (3)`,
    ]) {
      const result = await cli(["sql", "--write", statement], env);
      expect(result.code, result.stderr).toBe(0);
    }
  }, 320_000);

  afterAll(async () => {
    if (passed === 3) {
      await cli(["sql", "--write", `DROP TABLE IF EXISTS ${table} PURGE`], env);
      await cli(["sql", "--write", `DROP NAMESPACE IF EXISTS lake.e2e_sessions_${id}`], env);
      await rm(stateHome, { recursive: true, force: true });
    }
    await spark("down");
    await db.close();
  }, 120_000);

  it(`${CALLS} calls, ${AT_ONCE} at a time, join one session and open no more catalog connections`, async () => {
    const session = await keptSessionId();
    const before = await catalogConnections();
    const counts: number[] = [];
    for (let i = 0; i < CALLS; i += AT_ONCE) {
      counts.push(...(await Promise.all(Array.from({ length: AT_ONCE }, () => countRows()))));
    }
    const after = await catalogConnections();
    console.log(`catalog connections of ${SPARK_NAME}: ${before} before ${CALLS} calls, ${after} after`);

    expect(counts).toEqual(Array.from({ length: CALLS }, () => 3));
    // At most the session catalog's pool (2); a session per call would add one each (idle for 5 min).
    expect(after - before).toBeLessThanOrEqual(2);
    expect(await keptSessionId()).toBe(session);
    passed++;
  });

  it("replaces a kept session the server has closed, and keeps the new one", async () => {
    const closed = await keptSessionId();
    // Releasing the session tombstones its id on the server: it can never be used again.
    await new SparkConnectClient({ remote: `${REMOTE}/;session_id=${closed}` }).close();

    expect(await countRows()).toBe(3);
    const replacement = await keptSessionId();
    expect(replacement).not.toBe(closed);

    const before = await catalogConnections();
    for (let i = 0; i < 5; i++) expect(await countRows()).toBe(3);
    expect((await catalogConnections()) - before).toBeLessThanOrEqual(1);
    expect(await keptSessionId()).toBe(replacement);
    passed++;
  });

  it("keeps its session id across a Spark restart (the new server starts a session under it)", async () => {
    const session = await keptSessionId();
    await spark("down");
    await spark("up");
    const first = await until(
      "a call to succeed after the restart",
      async () => {
        const result = await cli(["sql", `SELECT count(*) AS n FROM ${table}`, "--json"], env);
        return result.code === 0 ? result : undefined;
      },
      { timeoutMs: 120_000, intervalMs: 1_000 },
    );
    expect(first.stdout).toContain('"n": 3');

    for (let i = 0; i < 5; i++) expect(await countRows()).toBe(3);
    expect(await keptSessionId()).toBe(session);
    expect(await catalogConnections()).toBeLessThanOrEqual(1);
    passed++;
  }, 320_000);
});
