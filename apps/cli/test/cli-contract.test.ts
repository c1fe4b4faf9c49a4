/**
 * The `lakeferry` command-line contract (issue 3): migrate, ingestion apply/list, discover --wait, status,
 * files, retry, enqueue, runs, history and sql, each with its JSON shape, exit code and one-line errors.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cli,
  cliJson,
  createSandbox,
  ingestionYaml,
  LakeferryProcess,
  removeSandbox,
  statusOf,
  until,
  writeJsonFiles,
  type Sandbox,
} from "./support.ts";

/** A one-line error on stderr, no stack trace. */
function expectOneLineError(stderr: string, ...fragments: string[]): void {
  const lines = stderr.trimEnd().split("\n");
  expect(lines, stderr).toHaveLength(1);
  expect(stderr).not.toMatch(/^\s+at /m);
  for (const fragment of fragments) expect(stderr).toContain(fragment);
}

const FILE_FIELDS = [
  "id",
  "filePath",
  "fileSize",
  "modifiedAt",
  "etag",
  "version",
  "status",
  "discoveredAt",
  "processingStartedAt",
  "processedAt",
  "recordsIngested",
  "bytesRead",
  "processingDurationMs",
  "errorMessage",
  "errorType",
  "retryCount",
  "attempts",
  "runId",
  "leaseOwner",
  "leaseExpiresAt",
  "batchId",
  "snapshotId",
];

interface FileRecord {
  id: number;
  filePath: string;
  status: string;
  attempts: number;
  recordsIngested: number | null;
  errorType: string | null;
  errorMessage: string | null;
  snapshotId: string | number | null;
  batchId: string | null;
}

/** `lakeferry files --json`: a page of files, and the `--after-id` of the next page (null on the last). */
interface FilesPage {
  files: FileRecord[];
  next: number | null;
}

describe("lakeferry CLI", () => {
  let box: Sandbox;
  let worker: LakeferryProcess | undefined;
  let passed = false;
  let yamlFile: string;

  beforeAll(async () => {
    box = await createSandbox("cli");
    yamlFile = join(box.dir, "ingestion.yaml");
    await writeFile(yamlFile, ingestionYaml(box));
  });

  afterAll(async () => {
    worker?.kill();
    if (passed) await removeSandbox(box, true);
    else await box.db.close();
  });

  it("refuses bad input with exit 1 and one clear line, before touching anything", async () => {
    const noDb = await cli(["migrate"], { ...box.env, DATABASE_URL: "" });
    expect(noDb.code, noDb.stderr).toBe(1);
    expectOneLineError(noDb.stderr, "DATABASE_URL", "is not set");

    const badUrl = await cli(["status", "x"], { ...box.env, REDIS_URL: "localhost:6379" });
    expect(badUrl.code, badUrl.stderr).toBe(1);
    expectOneLineError(badUrl.stderr, "REDIS_URL must be a redis://");

    const badLimit = await cli(["files", "x", "--limit", "many"], box.env);
    expect(badLimit.code, badLimit.stderr).toBe(1);
    expect(badLimit.stderr).toContain("must be a positive whole number");

    const unknown = await cli(["frobnicate"], box.env);
    expect(unknown.code, unknown.stderr).toBe(1);
    expect(unknown.stderr).toContain("unknown command");

    const help = await cli(["--help"], box.env);
    expect(help.code, help.stderr).toBe(0);
    expect(help.stdout).toContain("ingestion");
    expect(help.stdout).toContain("Exit codes");
  });

  it("migrates idempotently", async () => {
    const first = await cliJson<{ schema: string; applied: string[] }>(["migrate"], box.env);
    expect(first.schema).toBe(box.schema);
    expect(first.applied.length).toBeGreaterThan(0);
    const second = await cli(["migrate"], box.env);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain("up to date");
    expect(await cliJson(["migrate"], box.env)).toEqual({ schema: box.schema, applied: [] });
  });

  it("applies ingestion files (create, then update by name), lists them, refuses bad ones", async () => {
    const created = await cli(["ingestion", "apply", "-f", yamlFile], box.env);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(new RegExp(`^created ingestion ${box.name} \\(id \\d+\\)`));

    await writeFile(yamlFile, ingestionYaml(box, { retry: "{ attempts: 2, backoffMs: 300 }" }));
    const updated = await cliJson<{ name: string; created: boolean }[]>(
      ["ingestion", "apply", "-f", yamlFile],
      box.env,
    );
    expect(updated).toEqual([expect.objectContaining({ name: box.name, created: false })]);

    const list = await cliJson<Record<string, unknown>[]>(["ingestion", "list"], box.env);
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({
      name: box.name,
      sourceUri: box.sourceUri,
      format: "json",
      targetTable: box.table,
      glob: "**/*.json",
      maxAttempts: 2,
      backoffMs: 300,
      modifiedPolicy: "ignore",
      enabled: true,
    });
    const table = await cli(["ingestion", "list"], box.env);
    expect(table.stdout.split("\n")[0]).toMatch(/^name\s+source\s+format/);
    expect(table.stdout).toContain(box.name);

    const badYaml = join(box.dir, "bad.yaml");
    await writeFile(badYaml, "name: orders\nsource: [unclosed\n");
    const syntax = await cli(["ingestion", "apply", "-f", badYaml], box.env);
    expect(syntax.code, syntax.stderr).toBe(1);
    expectOneLineError(syntax.stderr, "yaml");

    await writeFile(badYaml, ingestionYaml(box, { name: "other", table: "orders" }));
    const badTable = await cli(["ingestion", "apply", "-f", badYaml], box.env);
    expect(badTable.code, badTable.stderr).toBe(1);
    expectOneLineError(badTable.stderr, "table", "catalog.namespace.table");

    const missing = await cli(["ingestion", "apply", "-f", join(box.dir, "nope.yaml")], box.env);
    expect(missing.code, missing.stderr).toBe(1);
    expectOneLineError(missing.stderr, "nope.yaml", "no such file");

    // Nothing of the refused files was applied.
    expect(await cliJson<unknown[]>(["ingestion", "list"], box.env)).toHaveLength(1);

    const noSuch = await cli(["status", "no-such-ingestion"], box.env);
    expect(noSuch.code, noSuch.stderr).toBe(1);
    expectOneLineError(noSuch.stderr, 'no ingestion named "no-such-ingestion"');
  }, 120_000);

  it("discovers, waits, reports per-file fate; status/files/runs/history JSON shapes; retry", async () => {
    const rows = await writeJsonFiles(box.source, 4);
    const bad = ["bad-1.json", "bad-2.json"];
    for (const name of bad) await writeFile(join(box.source, name), `{"id": 1, "file": "${name}" oops\n`);
    await writeFile(join(box.source, "ignored.txt"), "not matched by the pattern\n");

    worker = new LakeferryProcess(box, ["worker", "--concurrency", "20"]);
    const waited = await cli(["discover", box.name, "--wait", "--timeout", "120", "--json"], box.env, {
      timeoutMs: 150_000,
    });
    expect(waited.code, waited.stderr).toBe(1); // two files FAILED
    const summary = JSON.parse(waited.stdout) as Record<string, number>;
    expect(summary).toMatchObject({
      found: 6,
      created: 6,
      modified: 0,
      enqueued: 6,
      total: 6,
      settled: 6,
      failed: 2,
    });
    expect(waited.stderr).toContain("2 file(s) FAILED");
    // One line per failed file, then the summary.
    expect(waited.stderr.trimEnd().split("\n")).toHaveLength(3);

    const counts = await statusOf(box);
    expect(Object.keys(counts)).toEqual(["PENDING", "PROCESSING", "SUCCESS", "FAILED", "SKIPPED"]);
    expect(counts).toEqual({ PENDING: 0, PROCESSING: 0, SUCCESS: 4, FAILED: 2, SKIPPED: 0 });

    const { files, next } = await cliJson<FilesPage>(["files", box.name, "--limit", "50"], box.env);
    expect(files).toHaveLength(6);
    expect(next).toBeNull();
    for (const file of files) {
      for (const field of FILE_FIELDS) expect(file, `${file.filePath} has ${field}`).toHaveProperty(field);
    }
    for (const file of files.filter((f) => f.status === "SUCCESS")) {
      expect(file.recordsIngested).toBe(rows.get(file.filePath));
      expect(file.snapshotId).not.toBeNull();
      expect(file.batchId).not.toBeNull();
      expect(file.attempts).toBe(1);
    }
    const { files: failed } = await cliJson<FilesPage>(["files", box.name, "--status", "failed"], box.env);
    expect(failed.map((f) => f.filePath).sort()).toEqual(bad.map((name) => `${box.sourceUri}${name}`));
    for (const file of failed) {
      expect(file.attempts).toBe(1); // permanent: no retries spent
      expect(file.errorType).toBeTruthy();
      expect(file.errorMessage).toContain(file.filePath);
    }
    expect(await cliJson(["files", box.name, "--status", "PENDING"], box.env)).toEqual({
      files: [],
      next: null,
    });

    const runs = await cliJson<Record<string, unknown>[]>(["runs", box.name], box.env);
    expect(runs).toHaveLength(1);
    expect(runs[0]).toMatchObject({
      trigger: "manual",
      filesFound: 6,
      filesNew: 6,
      files: { total: 6, settled: 6, failed: 2 },
    });

    const history = await cliJson<{
      file: FileRecord;
      versions: unknown[];
      attempts: Record<string, unknown>[];
    }>(["history", box.name, "bad-1.json"], box.env);
    expect(history.file.filePath).toBe(`${box.sourceUri}bad-1.json`);
    expect(history.versions).toHaveLength(1);
    expect(history.attempts).toHaveLength(1);
    expect(JSON.stringify(history.attempts[0])).toContain("FAILED");

    const notTracked = await cli(["history", box.name, "nope.json"], box.env);
    expect(notTracked.code, notTracked.stderr).toBe(1);
    expectOneLineError(notTracked.stderr, "nope.json", "not tracked");
    const outside = await cli(["history", box.name, "/etc/passwd"], box.env);
    expect(outside.code, outside.stderr).toBe(1);
    expect(outside.stderr.trimEnd().split("\n")).toHaveLength(1);

    // Fix both files; retry one by name, the other as "every FAILED file".
    for (const name of bad) await writeFile(join(box.source, name), `{"id": 7, "file": 7, "amount": 1.5}\n`);
    const one = await cli(["retry", box.name, "--file", `${box.sourceUri}bad-1.json`], box.env);
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toContain("queued 1 file(s)");
    await until("bad-1.json to land", async () => (await statusOf(box)).SUCCESS === 5, { timeoutMs: 60_000 });
    const rest = await cli(["retry", box.name, "--failed"], box.env);
    expect(rest.code, rest.stderr).toBe(0);
    expect(rest.stdout).toContain("queued 1 file(s)");
    await until("every file to land", async () => (await statusOf(box)).SUCCESS === 6, { timeoutMs: 60_000 });

    const again = await cli(["retry", box.name, "--file", "bad-2.json", "--failed"], box.env);
    expect(again.code, again.stderr).toBe(1);
    expectOneLineError(again.stderr, "is SUCCESS: its rows are in the table already");
    const success = await cli(["retry", box.name, "--file", "f-0001.json"], box.env);
    expect(success.code, success.stderr).toBe(1);
    expectOneLineError(success.stderr, "f-0001.json is SUCCESS");

    const retried = await cliJson<{ attempts: Record<string, unknown>[] }>(
      ["history", box.name, "bad-2.json"],
      box.env,
    );
    expect(retried.attempts).toHaveLength(2);

    const n = await cliJson<{ n: number }[]>(["sql", `SELECT count(*) AS n FROM ${box.table}`], box.env);
    expect(n).toEqual([{ n: [...rows.values()].reduce((a, b) => a + b, 0) + 2 }]);

    const stopped = await worker.stop();
    expect(stopped).toEqual({ code: 0, signal: null });
  }, 300_000);

  it("enqueue refuses paths outside the source clearly", async () => {
    const refused = await cli(["enqueue", box.name, "/etc/passwd"], box.env);
    expect(refused.code, refused.stderr).toBe(1);
    expect(refused.stderr).toContain("refused /etc/passwd");
    const escaped = await cli(["enqueue", box.name, "../outside.json"], box.env);
    expect(escaped.code, escaped.stderr).toBe(1);
    expect(escaped.stderr).toContain("refused ../outside.json");
  });

  it("runs SQL through Spark Connect, as a table or JSON; bad SQL is one line, exit 1", async () => {
    const json = await cliJson<unknown[]>(
      ["sql", "SELECT 1 AS one, 'a' AS letter, CAST(NULL AS INT) AS nothing"],
      box.env,
    );
    expect(json).toEqual([{ one: 1, letter: "a", nothing: null }]);
    const table = await cli(["sql", "SELECT 1 AS one, 'a' AS letter"], box.env);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout.split("\n").slice(0, 3)).toEqual(["one  letter", "---  ------", "1    a"]);

    const bad = await cli(["sql", "SELEC nonsense"], box.env);
    expect(bad.code, bad.stderr).toBe(1);
    expectOneLineError(bad.stderr);
    const missing = await cli(["sql", "SELECT * FROM lake.no_such_ns.no_such_table"], box.env);
    expect(missing.code, missing.stderr).toBe(1);
    expectOneLineError(missing.stderr);
    passed = true;
  });
});
