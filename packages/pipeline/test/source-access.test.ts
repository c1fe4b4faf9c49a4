/**
 * The worker checks its own access policy where it reads (issue 12): a local file registered while it lay
 * in its source, then swapped for a symbolic link that leads out, FAILS as SOURCE_ACCESS_REFUSED instead of
 * being read.
 */
import { rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { listFiles } from "@lakeferry/db";
import { afterEach, describe, expect, it } from "vitest";
import { discoverFiles, waitForRun } from "../src/index.ts";
import { createWorld, jsonRows, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

describe("the worker's access policy", () => {
  it("refuses a file swapped, after discovery, for a link out of the source; reads its neighbour", async () => {
    const w = (world = await createWorld());
    const inside = await w.file("in/a.json", jsonRows(0, 1));
    const swapped = await w.file("in/b.json", jsonRows(10, 1));
    const outside = join(w.dir, "..", `outside-${w.prefix}.json`);
    await writeFile(outside, jsonRows(20, 1));
    const ingestion = await w.ingestion({ source: `file://${w.dir}/in/` });
    const first = await discoverFiles(w, ingestion);
    expect(first).toMatchObject({ found: 2, created: 2 });
    // After discovery, before any worker reads it.
    await rm(new URL(swapped).pathname);
    await symlink(outside, new URL(swapped).pathname);

    await w.worker({ storeOptions: () => ({ env: {} }) });
    expect(await waitForRun(w, first.run.id, { timeoutMs: 120_000 })).toEqual({
      total: 2,
      settled: 2,
      failed: 1,
    });
    const files = await listFiles(w.db, ingestion.id);
    expect(files.find((f) => f.filePath === inside)).toMatchObject({ status: "SUCCESS" });
    const refused = files.find((f) => f.filePath === swapped);
    expect(refused).toMatchObject({ status: "FAILED", errorType: "SOURCE_ACCESS_REFUSED" });
    expect(refused?.errorMessage).toMatch(
      /through a symbolic link, to .*outside-.*\.json, outside the source folder/,
    );
    await rm(outside);
  });
});
