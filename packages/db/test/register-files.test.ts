import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  claimFiles,
  fileHistory,
  getFile,
  getFilesByPaths,
  pathKeyCollision,
  recordOutcomes,
  registerFiles,
  renewLeases,
  resetFilesForRetry,
  startRun,
  type Database,
  type FileRef,
  type ListedFile,
} from "../src/index.ts";
import { freshDatabase, listing, newIngestion, raceBehindLock, secondConnection } from "./helpers.ts";

const byId = (a: FileRef, b: FileRef) => a.id - b.id;

describe("registerFiles", () => {
  it("registers new paths as PENDING version 1 with history, and does nothing for an identical re-listing", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db);
    const page = listing(0, 3);
    const first = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: page,
      modifiedPolicy: "ignore",
    });
    expect(first.modified).toEqual([]);
    expect(first.created.map((r) => [r.version, r.path])).toEqual(page.map((f) => [1, f.uri]));

    const file = await getFile(db, ingestion.id, page[1]!.uri);
    expect(file).toMatchObject({
      status: "PENDING",
      version: 1,
      etag: page[1]!.etag,
      fileSize: page[1]!.size,
      runId: run.id,
      attempts: 0,
    });
    expect(file!.modifiedAt.toISOString()).toBe("2026-11-01T00:00:00.000Z");
    const history = await fileHistory(db, file!.id);
    expect(history.versions).toMatchObject([
      { version: 1, status: "PENDING", etag: page[1]!.etag, runId: run.id },
    ]);

    const again = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: [...page].reverse(),
      modifiedPolicy: "ignore",
    });
    expect(again).toEqual({ created: [], modified: [], refused: [], known: [] });
    expect((await fileHistory(db, file!.id)).versions).toHaveLength(1);
  });

  it("hands each new path to exactly one of several concurrent callers", async () => {
    const db = await freshDatabase();
    const other = secondConnection(db);
    const { ingestion, run } = await newIngestion(db);
    const page = listing(0, 300);
    const shuffled = [...page].sort(() => Math.random() - 0.5);
    const results = await Promise.all([
      registerFiles(db, { ingestionId: ingestion.id, runId: run.id, files: page, modifiedPolicy: "append" }),
      registerFiles(other, {
        ingestionId: ingestion.id,
        runId: run.id,
        files: shuffled,
        modifiedPolicy: "append",
      }),
      registerFiles(other, {
        ingestionId: ingestion.id,
        runId: run.id,
        files: page.slice(100, 200),
        modifiedPolicy: "append",
      }),
    ]);
    const created = results.flatMap((r) => r.created);
    expect(created).toHaveLength(300);
    expect(new Set(created.map((r) => r.path)).size).toBe(300);
    expect(results.flatMap((r) => r.modified)).toEqual([]);
    const { rows } = await db.pool.query(
      `SELECT count(*)::int AS files, (SELECT count(*)::int FROM file_versions) AS versions FROM processed_files`,
    );
    expect(rows[0]).toEqual({ files: 300, versions: 300 });
  });

  it("records a change as SKIPPED history under the ignore policy, without re-queueing the file", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db, { modifiedPolicy: "ignore" });
    const [original] = listing(0, 1) as [ListedFile];
    const { created } = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: [original],
      modifiedPolicy: "ignore",
    });
    const changed = { ...original, etag: "changed", size: original.size + 1 };
    const run2 = await startRun(db, { ingestionId: ingestion.id, trigger: "schedule" });
    for (let i = 0; i < 2; i++) {
      const result = await registerFiles(db, {
        ingestionId: ingestion.id,
        runId: run2.id,
        files: [changed],
        modifiedPolicy: "ignore",
      });
      expect(result).toEqual({ created: [], modified: [], refused: [], known: [] });
    }
    const file = await getFile(db, ingestion.id, original.uri);
    expect(file).toMatchObject({
      id: created[0]!.id,
      version: 1,
      status: "PENDING",
      etag: original.etag,
      runId: run.id,
    });
    const { versions } = await fileHistory(db, file!.id);
    expect(versions.map((v) => [v.version, v.status, v.etag, v.errorType, v.runId])).toEqual([
      [1, "PENDING", original.etag, null, run.id],
      [2, "SKIPPED", "changed", "MODIFIED_IGNORED", run2.id],
    ]);
  });

  for (const policy of ["append", "replace"] as const) {
    it(`makes a changed file the next PENDING version with fresh counters under the ${policy} policy`, async () => {
      const db = await freshDatabase();
      const { ingestion, run } = await newIngestion(db, { modifiedPolicy: policy });
      const [done, queued] = listing(0, 2) as [ListedFile, ListedFile];
      const { created } = await registerFiles(db, {
        ingestionId: ingestion.id,
        runId: run.id,
        files: [done, queued],
        modifiedPolicy: policy,
      });
      const [doneRef, queuedRef] = created as [FileRef, FileRef];
      await claimFiles(db, { refs: [doneRef], worker: "w1", leaseMs: 60_000 });
      await recordOutcomes(db, {
        worker: "w1",
        outcomes: [
          { id: doneRef.id, version: 1, status: "FAILED", errorType: "Bad", errorMessage: "bad row" },
        ],
      });

      const run2 = await startRun(db, { ingestionId: ingestion.id, trigger: "schedule" });
      const changed = [done, queued].map((f) => ({
        ...f,
        etag: `${f.etag}-v2`,
        modifiedAt: new Date("2026-11-02T00:00:00Z"),
      }));
      const result = await registerFiles(db, {
        ingestionId: ingestion.id,
        runId: run2.id,
        files: changed,
        modifiedPolicy: policy,
      });
      expect(result.created).toEqual([]);
      expect(result.modified.sort(byId)).toEqual([
        { id: doneRef.id, version: 2, path: done.uri },
        { id: queuedRef.id, version: 2, path: queued.uri },
      ]);
      expect(
        await registerFiles(db, {
          ingestionId: ingestion.id,
          runId: run2.id,
          files: changed,
          modifiedPolicy: policy,
        }),
      ).toEqual({
        created: [],
        modified: [],
        refused: [],
        known: [],
      });

      expect(await getFile(db, ingestion.id, done.uri)).toMatchObject({
        version: 2,
        status: "PENDING",
        etag: `${done.etag}-v2`,
        runId: run2.id,
        attempts: 0,
        retryCount: 0,
        errorType: null,
        errorMessage: null,
        processedAt: null,
        processingDurationMs: null,
      });
      // The processed version keeps its fate; the never-processed one is marked superseded.
      expect(
        (await fileHistory(db, doneRef.id)).versions.map((v) => [v.version, v.status, v.errorType]),
      ).toEqual([
        [1, "FAILED", "Bad"],
        [2, "PENDING", null],
      ]);
      expect(
        (await fileHistory(db, queuedRef.id)).versions.map((v) => [v.version, v.status, v.errorType]),
      ).toEqual([
        [1, "SKIPPED", "SUPERSEDED"],
        [2, "PENDING", null],
      ]);
    });
  }

  it("supersedes a version being processed: the lease is gone and the in-flight outcome is ignored", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db, { modifiedPolicy: "append" });
    const [original] = listing(0, 1) as [ListedFile];
    const { created } = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: [original],
      modifiedPolicy: "append",
    });
    const ref = created[0]!;
    expect(await claimFiles(db, { refs: [ref], worker: "w1", leaseMs: 60_000 })).toHaveLength(1);

    const { modified } = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: [{ ...original, size: original.size + 10 }],
      modifiedPolicy: "append",
    });
    expect(modified).toEqual([{ id: ref.id, version: 2, path: original.uri }]);
    expect(await renewLeases(db, { worker: "w1", fileIds: [ref.id], leaseMs: 60_000 })).toEqual([]);
    const late = await recordOutcomes(db, {
      worker: "w1",
      outcomes: [{ id: ref.id, version: 1, status: "SUCCESS", recordsIngested: 5 }],
    });
    expect(late.applied).toEqual([]);
    expect(await getFile(db, ingestion.id, original.uri)).toMatchObject({
      version: 2,
      status: "PENDING",
      leaseOwner: null,
      recordsIngested: null,
    });
    const history = await fileHistory(db, ref.id);
    expect(history.attempts.map((a) => [a.version, a.attempt, a.outcome, a.errorType])).toEqual([
      [1, 1, "LOST", "SUPERSEDED"],
    ]);
    expect(
      await claimFiles(db, { refs: [{ id: ref.id, version: 2 }], worker: "w2", leaseMs: 60_000 }),
    ).toMatchObject([{ id: ref.id, version: 2, attempt: 1, previousBatchId: null }]);
  });

  it("reports the paths it left as they were, with their state, when asked", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db, { modifiedPolicy: "append" });
    const page = listing(0, 4);
    const first = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: page,
      modifiedPolicy: "append",
    });
    const [kept, changed, ignored, done] = first.created.sort(byId);
    await claimFiles(db, { refs: [{ id: done!.id, version: 1 }], worker: "w1", leaseMs: 60_000 });

    const second = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: [page[0]!, { ...page[1]!, etag: "changed" }, page[3]!, ...listing(4, 5)],
      modifiedPolicy: "append",
      reportKnown: true,
    });
    expect(second.created.map((f) => f.path)).toEqual([listing(4, 5)[0]!.uri]);
    expect(second.modified).toEqual([{ ...changed!, version: 2 }]);
    expect(second.known).toEqual([
      { ...kept!, status: "PENDING" },
      { ...done!, status: "PROCESSING" },
    ]);

    // A change the `ignore` policy leaves alone leaves the file as it was: known.
    const third = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: [{ ...page[2]!, etag: "changed" }],
      modifiedPolicy: "ignore",
      reportKnown: true,
    });
    expect(third).toEqual({
      created: [],
      modified: [],
      refused: [],
      known: [{ ...ignored!, status: "PENDING" }],
    });
  });

  it("creates one new version when concurrent callers see the same change", async () => {
    const db = await freshDatabase();
    const other = secondConnection(db);
    const third = secondConnection(db);
    const { ingestion, run } = await newIngestion(db, { modifiedPolicy: "replace" });
    const page = listing(0, 50);
    await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: page,
      modifiedPolicy: "replace",
    });
    const changed = page.map((f) => ({ ...f, etag: `${f.etag}-v2` }));
    // All callers read the same snapshot (version 1 everywhere) before any of them may write.
    const results = await raceBehindLock(
      db,
      `SELECT id FROM processed_files ORDER BY id FOR UPDATE`,
      () =>
        [other, other, third].map((conn) =>
          registerFiles(conn, {
            ingestionId: ingestion.id,
            runId: run.id,
            files: changed,
            modifiedPolicy: "replace",
            reportKnown: true,
          }),
        ),
      3,
    );
    const modified = results.flatMap((r) => r.modified);
    // A caller that lost the race saw version 1 and does not pass it off as the file's state.
    expect(results.flatMap((r) => r.known)).toEqual([]);
    expect(modified).toHaveLength(50);
    expect(new Set(modified.map((r) => r.id)).size).toBe(50);
    expect(modified.every((r) => r.version === 2)).toBe(true);
    const { rows } = await db.pool.query(`SELECT max(version) AS v, count(*)::int AS n FROM file_versions`);
    expect(rows[0]).toEqual({ v: 2, n: 100 });
  });

  it("refuses a malformed listing entry with the field to fix", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db);
    const bad = { ...listing(0, 1)[0]!, size: -1 };
    await expect(
      registerFiles(db, { ingestionId: ingestion.id, runId: run.id, files: [bad], modifiedPolicy: "ignore" }),
    ).rejects.toThrow(/files\[0\]\.size: must be an integer ≥ 0/);
  });

  it("keys a path by the first 16 bytes of the SHA-256 of its ingestion and its UTF-8 bytes, backslashes and all", async () => {
    const db = await freshDatabase();
    const paths = ["s3://b/a.json", "s3://b/ü\\x41\\\\\\101€😀.json", "file:///C:\\landing\\a b.csv", ""];
    const { rows } = await db.pool.query<{ key: string }>(
      "SELECT file_path_key(42, p)::text AS key FROM unnest($1::text[]) WITH ORDINALITY AS t(p, n) ORDER BY n",
      [paths],
    );
    const expected = paths.map((path) => {
      const hex = createHash("sha256").update(`42/${path}`, "utf8").digest("hex").slice(0, 32);
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    });
    expect(rows.map((row) => row.key)).toEqual(expected);
  });

  it("refuses a path whose key a different path holds, and never takes one for the other", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db);
    await forceKeyCollisions(db);
    // f00001.csv, f00002.csv and f00003.csv share one key now.
    const [a, b, c] = listing(1, 4) as [ListedFile, ListedFile, ListedFile];
    const register = (files: ListedFile[]) =>
      registerFiles(db, {
        ingestionId: ingestion.id,
        runId: run.id,
        files,
        modifiedPolicy: "append",
        reportKnown: true,
      });

    const first = await register([a]);
    expect(first.created.map((file) => file.path)).toEqual([a.uri]);
    // Tracked already (a), or with a's etag and size: refused all the same, a's file untouched.
    const second = await register([b, { ...c, etag: a.etag, size: a.size }]);
    expect(second).toEqual({
      created: [],
      modified: [],
      refused: [
        { path: b.uri, reason: pathKeyCollision(a.uri) },
        { path: c.uri, reason: pathKeyCollision(a.uri) },
      ],
      // Another path's file is not theirs to report.
      known: [],
    });
    const fileA = await getFile(db, ingestion.id, a.uri);
    expect(fileA).toMatchObject({ filePath: a.uri, version: 1, etag: a.etag, fileSize: a.size });
    expect((await fileHistory(db, fileA!.id)).versions).toHaveLength(1);

    // Readers by path find a's file for a only.
    expect(await getFile(db, ingestion.id, b.uri)).toBeUndefined();
    expect([...(await getFilesByPaths(db, ingestion.id, [b.uri, a.uri, c.uri])).keys()]).toEqual([a.uri]);
    await db.pool.query("UPDATE processed_files SET status = 'FAILED' WHERE id = $1", [fileA!.id]);
    expect(await resetFilesForRetry(db, ingestion.id, { path: b.uri })).toEqual([]);
    expect(await resetFilesForRetry(db, ingestion.id, { path: a.uri })).toEqual([
      { id: fileA!.id, version: 1, path: a.uri },
    ]);
  });

  it("refuses the later of two new paths of one page that share a key", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db);
    await forceKeyCollisions(db);
    const [b, c] = listing(2, 4) as [ListedFile, ListedFile];
    const result = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: [c, b],
      modifiedPolicy: "ignore",
    });
    expect(result.created.map((file) => file.path)).toEqual([b.uri]);
    expect(result.refused).toEqual([{ path: c.uri, reason: pathKeyCollision(b.uri) }]);
    expect(await getFile(db, ingestion.id, c.uri)).toBeUndefined();
  });

  it("refuses a path whose key a path of another ingestion holds, and finds neither as the other's", async () => {
    const db = await freshDatabase();
    const first = await newIngestion(db, { name: "first" });
    const second = await newIngestion(db, { name: "second" });
    await forceKeyCollisions(db, true);
    const [a, b] = listing(1, 3) as [ListedFile, ListedFile];
    const register = (owner: typeof first, files: ListedFile[]) =>
      registerFiles(db, {
        ingestionId: owner.ingestion.id,
        runId: owner.run.id,
        files,
        modifiedPolicy: "append",
        reportKnown: true,
      });

    expect((await register(first, [a])).created.map((file) => file.path)).toEqual([a.uri]);
    // The same path, and another sharing its key: the first ingestion's file is neither's.
    for (const path of [a, b]) {
      expect(await register(second, [path])).toEqual({
        created: [],
        modified: [],
        refused: [{ path: path.uri, reason: pathKeyCollision(null) }],
        known: [],
      });
      expect(await getFile(db, second.ingestion.id, path.uri)).toBeUndefined();
    }
    expect(await getFile(db, first.ingestion.id, a.uri)).toMatchObject({ filePath: a.uri, version: 1 });
  });
});

/**
 * Makes every path that differs only in its digits share a key in this test's schema (a SHA-256 prefix
 * collision cannot be found), so that the path comparisons behind the key are exercised; `acrossIngestions`:
 * whatever their ingestion. The index is rebuilt (empty) so that every connection reads the new definition.
 */
async function forceKeyCollisions(db: Database, acrossIngestions = false): Promise<void> {
  const ingestion = acrossIngestions ? "" : "ingestion_id::text || '/' || ";
  await db.pool.query(`CREATE OR REPLACE FUNCTION file_path_key(ingestion_id BIGINT, path TEXT) RETURNS UUID
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN pg_catalog.md5(${ingestion}pg_catalog.regexp_replace(path, '[0-9]', '', 'g'))::uuid`);
  await db.pool.query("REINDEX INDEX processed_files_file_path_key_key");
}
