/**
 * Least privilege at the CLI (issue 12): what each entry point refuses, through the real `lakeferry` process
 * against the real services, each refusal one line that says what to do.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, cliJson, createSandbox, removeSandbox, type Sandbox } from "./support.ts";

/** A one-line error on stderr, no stack trace, no Prisma invocation. */
function expectOneLineError(stderr: string, ...fragments: string[]): void {
  const lines = stderr.trimEnd().split("\n");
  expect(lines, stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/^\s+at /m);
  expect(stderr).not.toMatch(/invocation/i);
  for (const fragment of fragments) expect(stderr).toContain(fragment);
}

describe("lakeferry sql is read-only unless --write", () => {
  let box: Sandbox;
  let passed = false;
  beforeAll(async () => {
    box = await createSandbox("priv-sql");
  });
  afterAll(async () => {
    if (passed) await removeSandbox(box, true);
  });

  it("runs reads, refuses writes however they are dressed up, and runs them with --write", async () => {
    const namespace = box.table.split(".").slice(0, 2).join(".");
    const writes = [
      `CREATE TABLE ${box.table} (id BIGINT) USING iceberg`,
      `/* SELECT */ CREATE TABLE ${box.table} (id BIGINT) USING iceberg`,
      `WITH x AS (SELECT 1 AS id) INSERT INTO ${box.table} SELECT * FROM x`,
      // Spark's lexer nests bracketed comments: the EXPLAIN is inside one.
      `/* /* */ EXPLAIN */ CREATE NAMESPACE ${namespace}`,
      // A backslash continues a line comment onto the next line, EXPLAIN included.
      `-- note \\\nEXPLAIN\nCREATE NAMESPACE ${namespace}`,
      "SET spark.sql.shuffle.partitions=3",
      "SELECT reflect('java.lang.System', 'getProperty', 'user.home')",
    ];
    for (const statement of writes) {
      const refused = await cli(["sql", "--", statement], box.env);
      expect(refused.code, `${statement}: ${refused.stderr}`).toBe(1);
      expectOneLineError(refused.stderr, "add --write");
    }
    const twoStatements = await cli(["sql", `SELECT 1; CREATE NAMESPACE ${namespace}`], box.env);
    expect(twoStatements.code).toBe(1);
    expectOneLineError(twoStatements.stderr, "cannot parse the query as one statement");
    // Nothing of the above ran.
    expect(
      await cliJson<unknown[]>(["sql", `SHOW NAMESPACES IN lake LIKE '${namespace.split(".")[1]}'`], box.env),
    ).toEqual([]);

    const created = await cli(["sql", "--write", `CREATE NAMESPACE ${namespace}`], box.env);
    expect(created.code, created.stderr).toBe(0);
    const table = await cli(
      ["sql", "--write", `CREATE TABLE ${box.table} (id BIGINT) USING iceberg`],
      box.env,
    );
    expect(table.code, table.stderr).toBe(0);
    const inserted = await cli(["sql", "--write", `INSERT INTO ${box.table} VALUES (7)`], box.env);
    expect(inserted.code, inserted.stderr).toBe(0);

    const reads: [string, (rows: Record<string, unknown>[]) => void][] = [
      [`SELECT id FROM ${box.table}`, (rows) => expect(rows).toEqual([{ id: 7 }])],
      [
        `WITH t AS (SELECT id FROM ${box.table}) SELECT count(*) AS n FROM t`,
        (rows) => expect(rows).toEqual([{ n: 1 }]),
      ],
      [`SELECT count(*) AS n FROM ${box.table}.snapshots`, (rows) => expect(rows).toEqual([{ n: 1 }])],
      [`SHOW TABLES IN ${namespace}`, (rows) => expect(rows).toHaveLength(1)],
      [`DESCRIBE TABLE ${box.table}`, (rows) => expect(rows[0]).toMatchObject({ col_name: "id" })],
      [
        `-- the plan\nEXPLAIN DROP TABLE ${box.table}`,
        (rows) => expect(String(rows[0]?.plan)).toContain("DropTable"),
      ],
    ];
    for (const [statement, check] of reads) {
      const read = await cli(["sql", "--json", "--", statement], box.env);
      expect(read.code, `${statement}: ${read.stderr}`).toBe(0);
      check(JSON.parse(read.stdout) as Record<string, unknown>[]);
    }
    // The EXPLAIN of a DROP ran nothing: the table is still there.
    expect(await cliJson<unknown[]>(["sql", `SELECT id FROM ${box.table}`], box.env)).toEqual([{ id: 7 }]);
    passed = true;
  });
});

describe("connections", () => {
  it("Postgres down: each command's error is one line naming DATABASE_URL, no Prisma invocation", async () => {
    const env = { ...process.env, DATABASE_URL: "postgresql://lakeferry:x@127.0.0.1:1/lakeferry" } as Record<
      string,
      string
    >;
    for (const args of [
      ["migrate"],
      ["ingestion", "list"],
      ["files", "orders"],
      ["history", "orders", "a.json"],
    ]) {
      const down = await cli(args, env);
      expect(down.code, `${args.join(" ")}: ${down.stderr}`).toBe(2);
      expectOneLineError(down.stderr, "DB_UNAVAILABLE", "DATABASE_URL");
    }
  });

  it("a Spark token without TLS is refused unless LAKEFERRY_ALLOW_INSECURE_SPARK=1", async () => {
    const remote = `${process.env.SPARK_REMOTE ?? ""}/;token=not-for-the-wire`;
    const env = { ...process.env, SPARK_REMOTE: remote } as Record<string, string>;
    const refused = await cli(["sql", "SELECT 1 AS one"], env);
    expect(refused.code).toBe(1);
    expectOneLineError(refused.stderr, "SPARK_REMOTE", "use_ssl=true", "LAKEFERRY_ALLOW_INSECURE_SPARK=1");
    expect(refused.stderr).not.toContain("not-for-the-wire");
    // The test server checks no token: allowed, the query runs.
    const allowed = await cli(["sql", "--json", "SELECT 1 AS one"], {
      ...env,
      LAKEFERRY_ALLOW_INSECURE_SPARK: "1",
    });
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(JSON.parse(allowed.stdout)).toEqual([{ one: 1 }]);
  });
});
