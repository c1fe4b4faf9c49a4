/**
 * Least privilege at the CLI (issue 12): what each entry point refuses, through the real `lakeferry` process
 * against the real services, each refusal one line that says what to do.
 */
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, cliJson, createSandbox, ingestionYaml, removeSandbox, type Sandbox } from "./support.ts";

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

  it("Redis down: a command that queues says so at once, in one line naming REDIS_URL, instead of waiting", async () => {
    const box = await createSandbox("priv-redis");
    const migrated = await cli(["migrate"], box.env);
    expect(migrated.code, migrated.stderr).toBe(0);
    const file = join(box.dir, "ingestion.yaml");
    await writeFile(file, ingestionYaml(box));
    const env = { ...box.env, REDIS_URL: "redis://127.0.0.1:1" };
    for (const args of [
      ["ingestion", "apply", "-f", file],
      ["discover", box.name],
    ]) {
      const down = await cli(args, env, { timeoutMs: 60_000 });
      expect(down.code, `${args.join(" ")}: ${down.stderr}`).toBe(2);
      const error = down.stderr.split("\n").filter((line) => line.startsWith("lakeferry:"));
      expect(error).toHaveLength(1);
      expect(error[0]).toContain("REDIS_UNAVAILABLE: Redis at 127.0.0.1:1 did not answer");
      expect(error[0]).toContain("REDIS_URL");
    }
    await removeSandbox(box);
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

describe("ingestion apply, discover and enqueue keep to the access policy", () => {
  let box: Sandbox;
  let passed = false;
  beforeAll(async () => {
    box = await createSandbox("priv-apply");
    const migrated = await cli(["migrate"], box.env);
    expect(migrated.code, migrated.stderr).toBe(0);
  });
  afterAll(async () => {
    if (passed) await removeSandbox(box);
  });

  /** Applies `yaml` under `env` and returns the result. */
  const apply = async (yaml: string, env: Record<string, string> = box.env) => {
    const file = join(box.dir, `ingestion-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(file, yaml);
    return cli(["ingestion", "apply", "-f", file], env);
  };

  it("refuses sources outside LAKEFERRY_LOCAL_ROOTS, forbidden credential references and Spark settings", async () => {
    const rooted = { ...box.env, LAKEFERRY_LOCAL_ROOTS: join(box.dir, "landing") };
    const outside = await apply(ingestionYaml(box), rooted);
    expect(outside.code).toBe(1);
    expectOneLineError(
      outside.stderr,
      "source:",
      "outside the folders local sources may read",
      "LAKEFERRY_LOCAL_ROOTS",
    );

    const s3 = { source: JSON.stringify("s3://landing/in/") };
    const refusals: [Record<string, string>, string][] = [
      [
        {
          ...s3,
          credentials: "{ accessKeyId: { env: DATABASE_URL }, secretAccessKey: { env: ORDERS_SECRET } }",
        },
        "one of lakeferry's own settings",
      ],
      [
        { ...s3, credentials: "{ accessKeyId: { env: K }, secretAccessKey: { file: /etc/shadow } }" },
        "LAKEFERRY_SECRET_DIRS",
      ],
      [
        { ...s3, credentials: "{ endpoint: 'http://collector.example:9000' }" },
        "LAKEFERRY_ALLOWED_ENDPOINTS",
      ],
      [{ options: "{ spark.sql.files.maxPartitionBytes: 1 }" }, "reach the Spark server's configuration"],
      [
        { options: "{ fs.s3a.endpoint: 'http://collector.example' }" },
        "Hadoop settings are not reader options",
      ],
    ];
    for (const [extra, message] of refusals) {
      const refused = await apply(ingestionYaml(box, extra));
      expect(refused.code, JSON.stringify(extra)).toBe(1);
      expectOneLineError(refused.stderr, message);
    }
    const none = await cliJson<unknown[]>(["ingestion", "list"], box.env);
    expect(none).toEqual([]);
    passed = true;
  });

  it("lists and enqueues no file through a link that leaves the source", async () => {
    passed = false;
    const secret = join(box.dir, "outside.json");
    await writeFile(secret, '{"id": 1, "file": 1, "amount": 1}\n');
    await writeFile(join(box.source, "inside.json"), '{"id": 2, "file": 2, "amount": 2}\n');
    await symlink(secret, join(box.source, "leak.json"));
    await mkdir(join(box.dir, "elsewhere"));
    await writeFile(join(box.dir, "elsewhere", "deep.json"), '{"id": 3, "file": 3, "amount": 3}\n');
    await symlink(join(box.dir, "elsewhere", "deep.json"), join(box.source, "deep.json"));
    // The source's own folder is inside the roots; its links lead out.
    const env = { ...box.env, LAKEFERRY_LOCAL_ROOTS: box.source };
    const applied = await apply(ingestionYaml(box), env);
    expect(applied.code, applied.stderr).toBe(0);

    const discovered = await cli(["discover", box.name, "--json"], env);
    expect(discovered.code, discovered.stderr).toBe(0);
    const runId = (JSON.parse(discovered.stdout) as { run: number }).run;
    const report = await cli(["report", String(runId), "--full"], env);
    expect(report.stdout).toMatch(
      /leak\.json: a symbolic link to .*outside\.json, outside the source folder/,
    );
    expect(report.stdout).toMatch(/deep\.json: a symbolic link to .*elsewhere\/deep\.json/);
    const { files } = await cliJson<{ files: { filePath: string }[] }>(["files", box.name], env);
    expect(files.map((f) => f.filePath.replace(/^.*\//, ""))).toEqual(["inside.json"]);

    const enqueued = await cli(["enqueue", box.name, "leak.json"], env);
    expect(enqueued.code).toBe(1);
    expect(enqueued.stderr).toMatch(/refused leak\.json: a symbolic link to .*outside the source folder/);
    passed = true;
  });
});
