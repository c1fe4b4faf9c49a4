/**
 * Issue 11, listing: hidden names (a segment starting with `_` or `.`) are left out with the reason on the
 * run unless `listing.includeHidden`, and then ingested with every row by real Spark; a local file still
 * being written is deferred (`listing.minAgeMs`) and found by the next incremental pass, whole.
 */
import { appendFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { getIngestion, listFiles, listRefusals, pathKeyCollision } from "@lakeferry/db";
import { afterEach, describe, expect, it } from "vitest";
import { discoverFiles, MAX_RECORDED_REFUSALS, submitFiles, waitForRun } from "../src/index.ts";

import { COPY_IN_PROGRESS_REASON, HIDDEN_NAME_REASON, readListingCursor } from "../src/source-settings.ts";
import { createWorld, eventually, jsonRows, rowsPerFile, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

const HIDDEN = ["_under.json", ".dot.json", "_temporary/0/part-0.json", "day=1/.staging/x.json"];

/** One plain file and the hidden ones, rows 1, 2, 3… each; returns each file's URI → rows. */
async function landing(w: TestWorld): Promise<Record<string, number>> {
  const expected: Record<string, number> = {};
  for (const [index, name] of ["plain.json", ...HIDDEN].entries()) {
    expected[await w.file(name, jsonRows(index * 100, index + 1))] = index + 1;
  }
  return expected;
}

describe("hidden names", () => {
  it("are not registered by default; the run lists each with the reason", async () => {
    const w = (world = await createWorld());
    const expected = await landing(w);
    const ingestion = await w.ingestion();

    const result = await discoverFiles(w, ingestion);
    expect(result).toMatchObject({ found: 1, created: 1, hidden: HIDDEN.length, deferred: 0 });
    expect(result.run.filesRefused).toBe(HIDDEN.length);
    const refusals = await listRefusals(w.db, result.run.id);
    expect(refusals.map((r) => r.path).sort()).toEqual(
      HIDDEN.map((name) => `file://${join(w.dir, name)}`).sort(),
    );
    for (const refusal of refusals) expect(refusal.reason).toBe(HIDDEN_NAME_REASON);
    expect((await listFiles(w.db, ingestion.id)).map((f) => f.filePath)).toEqual([
      `file://${join(w.dir, "plain.json")}`,
    ]);
    expect(Object.keys(expected)).toHaveLength(HIDDEN.length + 1);

    // Submitted paths follow the same rule.
    const submission = await submitFiles(w, ingestion.name, ["_under.json", "plain.json"]);
    expect(submission.refused).toEqual([{ path: "_under.json", reason: HIDDEN_NAME_REASON }]);
    expect(submission.accepted).toHaveLength(1);
  });

  it("a copy still in progress (._COPYING_) is never registered, even with listing.includeHidden", async () => {
    const w = (world = await createWorld());
    const copying = await w.file("big.json._COPYING_", jsonRows(0, 2));
    await w.file("done.json", jsonRows(100, 1));
    const ingestion = await w.ingestion({ pattern: "**/*.json*", listing: { includeHidden: true } });

    const result = await discoverFiles(w, ingestion);
    expect(result).toMatchObject({ found: 1, created: 1 });
    expect(await listRefusals(w.db, result.run.id)).toMatchObject([
      { path: copying, reason: COPY_IN_PROGRESS_REASON },
    ]);
    const submission = await submitFiles(w, ingestion.name, ["big.json._COPYING_"]);
    expect(submission.refused).toEqual([{ path: "big.json._COPYING_", reason: COPY_IN_PROGRESS_REASON }]);
  });

  it("with listing.includeHidden are registered and ingested with every row", async () => {
    const w = (world = await createWorld());
    const expected = await landing(w);
    const ingestion = await w.ingestion({ listing: { includeHidden: true } });
    await w.worker();

    const result = await discoverFiles(w, ingestion);
    expect(result).toMatchObject({ found: HIDDEN.length + 1, created: HIDDEN.length + 1, hidden: 0 });
    expect(await waitForRun(w, result.run.id, { timeoutMs: 120_000 })).toEqual({
      total: HIDDEN.length + 1,
      settled: HIDDEN.length + 1,
      failed: 0,
    });
    expect(await rowsPerFile(w.spark, w.table())).toEqual(expected);
    for (const file of await listFiles(w.db, ingestion.id)) {
      expect(file.recordsIngested).toBe(expected[file.filePath]);
    }

    const late = await w.file("_late.json", jsonRows(9_000, 4));
    const submission = await submitFiles(w, ingestion.name, ["_late.json"]);
    expect(submission.refused).toEqual([]);
    await waitForRun(w, submission.run.id, { timeoutMs: 120_000 });
    expect((await rowsPerFile(w.spark, w.table()))[late]).toBe(4);
  });
});

describe("listing.minAgeMs", () => {
  it("defers a local file while it is appended to; the next incremental pass registers it whole", async () => {
    const w = (world = await createWorld());
    await w.file("a.json", jsonRows(0, 1));
    const growing = await w.file("b.json", "");
    const after = await w.file("c.json", jsonRows(100, 1));
    const path = new URL(growing).pathname;
    let lines = 0;
    let writing = true;
    const writer = (async () => {
      while (writing) {
        await appendFile(path, jsonRows(1_000 + lines, 1));
        lines += 1;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const ingestion = await w.ingestion({ listing: { mode: "incremental", minAgeMs: 1_500 } });
    await w.worker();
    try {
      await eventually("a few lines appended", async () => (lines >= 3 ? true : undefined), 10_000, 20);
      const first = await discoverFiles(w, ingestion);
      expect(first).toMatchObject({ found: 2, created: 2, deferred: 1, hidden: 0 });
      const [refusal] = await listRefusals(w.db, first.run.id);
      expect(refusal?.path).toBe(growing);
      expect(refusal?.reason).toMatch(/^deferred: modified \d+ ms ago, under listing\.minAgeMs \(1500\)/);
      // The cursor stays before the deferred file, whatever came after it.
      const cursor = readListingCursor((await getIngestion(w.db, ingestion.name))?.listingCursor);
      expect(cursor.lastKey).toBe(join(w.dir, "a.json"));
      expect(cursor.lastFullListingAt).toBeDefined();
      // It remembers what it waits on, and since when, across passes (to warn when a file never settles).
      expect(cursor.heldBy?.key).toBe(path);
      const again = await discoverFiles(w, (await getIngestion(w.db, ingestion.name))!);
      expect(again.deferred).toBe(1);
      expect(readListingCursor((await getIngestion(w.db, ingestion.name))?.listingCursor).heldBy).toEqual(
        cursor.heldBy,
      );
    } finally {
      writing = false;
      await writer;
    }
    const size = (await stat(path)).size;

    // Incremental passes (the last full listing was just now) until the file has been still long enough.
    const second = await eventually(
      "the deferred file registered",
      async () => {
        const pass = await discoverFiles(w, (await getIngestion(w.db, ingestion.name))!);
        return pass.created > 0 ? pass : undefined;
      },
      30_000,
      300,
    );
    expect(second).toMatchObject({ created: 1, deferred: 0 });
    const files = await listFiles(w.db, ingestion.id);
    expect(files.find((f) => f.filePath === growing)?.fileSize).toBe(size);
    await waitForRun(w, second.run.id, { timeoutMs: 120_000 });
    expect((await rowsPerFile(w.spark, w.table()))[growing]).toBe(lines);
    const settled = readListingCursor((await getIngestion(w.db, ingestion.name))?.listingCursor);
    expect(settled.lastKey).toBe(new URL(after).pathname);
    expect(settled.heldBy).toBeUndefined();
  });

  it("lists the first 1,000 refused paths of a pass on its run and counts the rest", async () => {
    const w = (world = await createWorld());
    await w.file("plain.json", jsonRows(0, 1));
    await Promise.all(
      Array.from({ length: MAX_RECORDED_REFUSALS + 5 }, (_, i) =>
        w.file(`_temporary/part-${String(i).padStart(5, "0")}.json`, "{}\n"),
      ),
    );
    const result = await discoverFiles(w, await w.ingestion());
    expect(result).toMatchObject({ found: 1, created: 1, hidden: MAX_RECORDED_REFUSALS + 5 });
    expect(result.run.filesRefused).toBe(MAX_RECORDED_REFUSALS + 5);
    expect(await listRefusals(w.db, result.run.id, 5_000)).toHaveLength(MAX_RECORDED_REFUSALS);
  });
});

describe("path keys", () => {
  it("a path whose key a different path holds is refused with the reason, by discovery and by submission", async () => {
    const w = (world = await createWorld());
    // Paths that differ only in digits share a key in this schema (no SHA-256 prefix collision is known).
    await w.db.pool
      .query(`CREATE OR REPLACE FUNCTION file_path_key(ingestion_id BIGINT, path TEXT) RETURNS UUID
      LANGUAGE sql IMMUTABLE PARALLEL SAFE
      RETURN pg_catalog.md5(ingestion_id::text || '/' || pg_catalog.regexp_replace(path, '[0-9]', '', 'g'))::uuid`);
    await w.db.pool.query("REINDEX INDEX processed_files_file_path_key_key");
    const first = await w.file("day1.json", jsonRows(0, 1));
    const second = await w.file("day2.json", jsonRows(1, 1));
    const ingestion = await w.ingestion();

    const result = await discoverFiles(w, ingestion);
    expect(result).toMatchObject({ found: 2, created: 1 });
    expect(await listRefusals(w.db, result.run.id)).toEqual([
      { path: second, reason: pathKeyCollision(first) },
    ]);
    expect((await listFiles(w.db, ingestion.id)).map((f) => f.filePath)).toEqual([first]);

    const submission = await submitFiles(w, ingestion.name, ["day2.json", "day1.json"]);
    expect(submission.refused).toEqual([{ path: "day2.json", reason: pathKeyCollision(first) }]);
    expect(submission.accepted.map((file) => file.path)).toEqual([first]);
  });
});
