/**
 * The seed's schema-approval flow through the CLI, as an operator meets it: under `schemaEvolution:
 * failOnNewColumns` a file with a new column is SKIPPED (the others land), `lakeferry schema diff` shows the
 * column with its files, `lakeferry schema approve` adds it to the table and the file lands.
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
  type Sandbox,
} from "./support.ts";

describe("lakeferry schema diff / approve", () => {
  let box: Sandbox;
  let worker: LakeferryProcess | undefined;
  let passed = false;

  beforeAll(async () => {
    box = await createSandbox("schema");
    expect((await cli(["migrate"], box.env)).code).toBe(0);
    // No declared schema: the files' columns are inferred and compared with the table's.
    const yaml = ingestionYaml(box, { schemaEvolution: "failOnNewColumns" })
      .split("\n")
      .filter((line) => !line.startsWith("schema:"))
      .join("\n");
    const file = join(box.dir, "ingestion.yaml");
    await writeFile(file, yaml);
    const applied = await cli(["ingestion", "apply", "-f", file], box.env);
    expect(applied.code, applied.stderr).toBe(0);
  });

  afterAll(async () => {
    worker?.kill();
    if (passed) await removeSandbox(box, true);
    else await box.db.close();
  });

  it("skips the file with a new column, shows the diff, and ingests it once approved", async () => {
    await writeFile(join(box.source, "a-1.json"), `${JSON.stringify({ id: 1, v: "a" })}\n`);
    worker = new LakeferryProcess(box, ["worker", "--concurrency", "10"]);
    const first = await cli(["discover", box.name, "--wait", "--timeout", "120"], box.env, {
      timeoutMs: 150_000,
    });
    expect(first.code, first.stderr).toBe(0);

    await writeFile(join(box.source, "b-1.json"), `${JSON.stringify({ id: 2, v: "b", score: 1.5 })}\n`);
    await writeFile(join(box.source, "a-2.json"), `${JSON.stringify({ id: 3, v: "c" })}\n`);
    await cli(["discover", box.name, "--wait", "--timeout", "120"], box.env, {
      timeoutMs: 150_000,
    });
    expect(await statusOf(box)).toMatchObject({ SUCCESS: 2, SKIPPED: 1 });

    const diff = await cli(["schema", "diff", box.name], box.env);
    expect(diff.code, diff.stderr).toBe(0);
    const lines = diff.stdout.trimEnd().split("\n");
    expect(lines[0]).toBe(`${box.table}: 1 new column(s) wait for approval`);
    expect(lines[1]).toMatch(/^change\s+type\s+files\s+example\s+firstSeen\s+approved$/);
    expect(lines[3]).toMatch(/^\+ score\s+double\s+1\s+b-1\.json\s+\d{4}-/);
    expect(lines.at(-1)).toBe(`approve with: lakeferry schema approve ${box.name}`);

    const approved = await cli(["schema", "approve", box.name], box.env, { timeoutMs: 150_000 });
    expect(approved.code, approved.stderr).toBe(0);
    expect(approved.stdout.trimEnd().split("\n")).toEqual([
      `${box.table}: approved score double`,
      `queued 1 skipped file(s) of ${box.name} again`,
    ]);
    await until(
      "the approved file to land",
      async () => {
        const counts = await statusOf(box);
        return counts.SUCCESS === 3 ? counts : undefined;
      },
      { timeoutMs: 120_000 },
    );
    const rows = await cliJson<{ score: number | null }[]>(
      ["sql", `SELECT score FROM ${box.table} WHERE score IS NOT NULL`, "--json"],
      box.env,
    );
    expect(rows).toEqual([{ score: 1.5 }]);
    const after = await cliJson<{ changes: { column: string; approvedAt: string | null }[] }>(
      ["schema", "diff", box.name, "--all", "--json"],
      box.env,
    );
    expect(after.changes.map((change) => change.column)).toEqual(["score"]);
    expect(after.changes[0]?.approvedAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    const nothing = await cli(["schema", "approve", box.name], box.env);
    expect(nothing.stdout.split("\n")[0]).toBe(`${box.name}: no new column waited for approval`);
    passed = true;
  }, 600_000);
});
