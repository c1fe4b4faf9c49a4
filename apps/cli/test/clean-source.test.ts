/**
 * Source cleanup from the CLI (issue 11): `ingestion apply` refuses a wrong `cleanSource` in one line,
 * `lakeferry maintain NAME --task cleanSource` moves the objects of the files a worker wrote, and
 * `lakeferry history` shows what became of a file's object.
 */
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  cli,
  cliJson,
  createSandbox,
  LakeferryProcess,
  removeSandbox,
  setUpIngestion,
  writeJsonFiles,
  type Sandbox,
} from "./support.ts";

const exists = (path: string): Promise<boolean> =>
  stat(path).then(
    () => true,
    () => false,
  );

describe("lakeferry and cleanSource", () => {
  let box: Sandbox;
  let worker: LakeferryProcess | undefined;
  let passed = false;

  beforeAll(async () => {
    box = await createSandbox("clean");
  });

  afterAll(async () => {
    await worker?.stop();
    if (passed) await removeSandbox(box, true);
  });

  it("refuses a short delete retention at apply, then moves what a worker wrote, and shows it in history", async () => {
    await expect(setUpIngestion(box, { cleanSource: "{ mode: delete, retention: 2d }" })).rejects.toThrow(
      /ingestion apply failed: lakeferry: cleanSource\.retention: must be at least 7d with mode: delete, so that a problem found in the table can still be fixed from the source files; or use mode: move\n$/,
    );

    const archive = join(box.dir, "archive");
    await setUpIngestion(box, { cleanSource: `{ mode: move, moveTo: "file://${archive}/", retention: 0m }` });
    const rows = await writeJsonFiles(box.source, 3);
    worker = new LakeferryProcess(box, ["worker"]);
    const run = await cli(["run", box.name, "--timeout", "120"], box.env, { timeoutMs: 150_000 });
    expect(run.code, run.stderr).toBe(0);

    const bad = await cli(["maintain", box.name, "--task", "tidy"], box.env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(
      "lakeferry: --task tidy is not a task; use one of expireSnapshots, compaction, rewriteManifests, cleanSource\n",
    );

    const cleaned = await cli(["maintain", box.name, "--task", "cleanSource"], box.env);
    expect(cleaned.code, cleaned.stderr).toBe(0);
    expect(cleaned.stdout).toMatch(
      /^cleanSource: 3 moved, 0 already gone, 0 left \(changed since ingested\), 0 failed \(tried again on the next run\) in \d+\.\d s\n$/,
    );
    for (const uri of rows.keys()) {
      const name = uri.slice(uri.lastIndexOf("/") + 1);
      expect(await exists(new URL(uri).pathname)).toBe(false);
      expect(await exists(join(archive, name))).toBe(true);
    }
    const again = await cliJson<{ task: string; kind: string; moved: number }[]>(
      ["maintain", box.name, "--task", "cleanSource"],
      box.env,
    );
    expect(again).toMatchObject([{ task: "cleanSource", kind: "done", moved: 0, failed: 0 }]);

    const history = await cliJson<{ sourceCleanups: Record<string, unknown>[] }>(
      ["history", box.name, "f-0000.json"],
      box.env,
    );
    expect(history.sourceCleanups).toMatchObject([
      {
        version: 1,
        action: "moved",
        movedTo: `file://${archive}/f-0000.json`,
        attempts: 1,
        errorMessage: null,
      },
    ]);
    const text = await cli(["history", box.name, "f-0000.json"], box.env);
    expect(text.stdout).toContain("source cleanup of version 1");
    expect(text.stdout).toMatch(/action: +moved/);

    // The cleaned paths are not registered again (the next pass finds nothing), and stay SUCCESS.
    const pass = await cliJson<{ found: number; created: number }>(["discover", box.name], box.env);
    expect(pass).toMatchObject({ found: 0, created: 0 });
    const status = await cliJson<Record<string, number>>(["status", box.name], box.env);
    expect(status).toMatchObject({ SUCCESS: 3 });
    passed = true;
  });
});
