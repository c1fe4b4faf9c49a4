/**
 * Issue 4 acceptance, end to end on the S3 emulator: 200 JSON objects in a moto bucket → `lakeferry
 * ingestion apply` (source s3://bucket/prefix/) → `lakeferry discover --wait` with a real `lakeferry
 * worker` process → Spark reads each object through s3a:// → Iceberg. Every file SUCCESS, its rows in the
 * table exactly once under the s3:// URI it was listed by. A missing bucket fails the discovery run (exit
 * 2, the error on stderr); a malformed source is refused when the ingestion is applied (exit 1).
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { putAll, s3Fixture } from "../../../packages/storage/test/fixtures.ts";
import {
  cli,
  cliJson,
  createSandbox,
  expectExactlyOnce,
  ingestionYaml,
  LakeferryProcess,
  removeSandbox,
  rowsPerFile,
  setUpIngestion,
  statusOf,
  type Sandbox,
} from "./support.ts";

const FILES = 200;

describe("S3 → discoverer → worker → Spark (s3a) → Iceberg", () => {
  let box: Sandbox;
  let worker: LakeferryProcess | undefined;
  let passed = 0;

  beforeAll(async () => {
    box = await createSandbox("s3e2e");
  });

  afterAll(async () => {
    worker?.kill();
    if (passed === 2) await removeSandbox(box, true);
    else await box.db.close();
  });

  it("ingests 200 objects from the S3 emulator, each exactly once, through s3a://", async () => {
    const bucket = await s3Fixture.createContainer("e2e");
    // JSON lines; object i holds (i % 3) + 1 rows.
    const expected = new Map<string, number>();
    const bodies = new Map<string, string>();
    for (let i = 0; i < FILES; i++) {
      const key = `landing/2026/11/29/f-${String(i).padStart(4, "0")}.json`;
      const lines = Array.from({ length: (i % 3) + 1 }, (_, j) =>
        JSON.stringify({ id: i * 10 + j, file: i, amount: i + j / 10 }),
      );
      bodies.set(key, `${lines.join("\n")}\n`);
      expected.set(`${bucket.rootUri}${key}`, lines.length);
    }
    // Beside the source prefix: never listed, never ingested.
    bodies.set("landing-other/x.json", '{"id": -1, "file": -1, "amount": 0}\n');
    await putAll(bucket, [...bodies.keys()], (key) => bodies.get(key) ?? "");

    await setUpIngestion(box, { source: JSON.stringify(`${bucket.rootUri}landing/`) });
    worker = new LakeferryProcess(box, ["worker"]);
    const waited = await cli(["discover", box.name, "--wait", "--timeout", "150", "--json"], box.env, {
      timeoutMs: 180_000,
    });
    expect(waited.code, `${waited.stderr}\nworker log: ${worker.logFile}`).toBe(0);
    expect(JSON.parse(waited.stdout)).toMatchObject({
      found: FILES,
      created: FILES,
      enqueued: FILES,
      total: FILES,
      settled: FILES,
      failed: 0,
    });

    expect(await statusOf(box)).toEqual({ PENDING: 0, PROCESSING: 0, SUCCESS: FILES, FAILED: 0, SKIPPED: 0 });
    // Each object's rows once, under the s3:// URI the listing gave (not the s3a:// one Spark read).
    expect(expectExactlyOnce(await rowsPerFile(box), expected)).toEqual([]);
    const total = await cliJson<{ n: number }[]>(["sql", `SELECT count(*) AS n FROM ${box.table}`], box.env);
    expect(total[0]?.n).toBe([...expected.values()].reduce((a, b) => a + b, 0));
    const recorded = await box.db.pool.query<{ n: string; records: string }>(
      "SELECT count(*) AS n, sum(records_ingested) AS records FROM processed_files WHERE status = 'SUCCESS'",
    );
    expect(Number(recorded.rows[0]?.records)).toBe(total[0]?.n);

    // A second pass over the same bucket finds nothing new.
    const again = await cliJson<{ found: number; created: number }>(["discover", box.name], box.env);
    expect(again).toMatchObject({ found: 0, created: 0 });

    expect(await worker.stop()).toEqual({ code: 0, signal: null });
    passed += 1;
  }, 300_000);

  it("fails the discovery run of a missing bucket (exit 2), and refuses a malformed source at apply (exit 1)", async () => {
    const missing = s3Fixture.missingUri();
    const name = `${box.name}-missing`;
    const file = join(box.dir, "missing.yaml");
    await writeFile(
      file,
      ingestionYaml(box, { name, source: JSON.stringify(missing), table: `${box.table}_missing` }),
    );
    const applied = await cli(["ingestion", "apply", "-f", file], box.env);
    expect(applied.code, applied.stderr).toBe(0);
    const discovered = await cli(["discover", name], box.env);
    expect(discovered.code).toBe(2);
    const bucket = /^s3:\/\/([^/]+)/.exec(missing)?.[1] ?? "";
    expect(discovered.stderr).toContain("STORAGE_NOT_FOUND");
    expect(discovered.stderr).toContain(`bucket ${bucket} not found`);
    const runs = await box.db.pool.query<{ status: string; error_type: string; error_message: string }>(
      "SELECT r.status, r.error_type, r.error_message FROM runs r JOIN ingestions i ON i.id = r.ingestion_id WHERE i.name = $1",
      [name],
    );
    expect(runs.rows).toHaveLength(1);
    expect(runs.rows[0]).toMatchObject({ status: "failed", error_type: "STORAGE_NOT_FOUND" });
    expect(runs.rows[0]?.error_message).toContain(bucket);

    const malformed = join(box.dir, "malformed.yaml");
    await writeFile(
      malformed,
      ingestionYaml(box, { name: `${box.name}-bad`, source: JSON.stringify("s3://Not_A_Bucket/in/") }),
    );
    const refused = await cli(["ingestion", "apply", "-f", malformed], box.env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/source: "Not_A_Bucket" is not an S3 bucket name/);
    passed += 1;
  }, 60_000);
});
