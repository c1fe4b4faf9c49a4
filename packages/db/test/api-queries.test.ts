/**
 * The queries the HTTP API adds (issue 10): file filters, lookups by id, enabling an ingestion, retrying
 * files by id, and recorded submissions.
 */
import { describe, expect, it } from "vitest";
import {
  claimFiles,
  findSubmissionRequest,
  getFileById,
  getFilesByIds,
  getFilesByPaths,
  getRun,
  listFiles,
  recordOutcomes,
  recordSubmissionRequest,
  registerFiles,
  resetFilesForRetry,
  setIngestionEnabled,
  startRun,
  type FileRef,
  type ListedFile,
} from "../src/index.ts";
import { freshDatabase, newIngestion } from "./helpers.ts";

const at = new Date("2026-11-01T00:00:00Z");
const object = (key: string, etag = "e"): ListedFile => ({
  uri: `s3://landing/orders/${key}`,
  size: 10,
  etag,
  modifiedAt: at,
});

describe("queries of the HTTP API", () => {
  it("filters files by run, change time and a literal path prefix", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db);
    await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: [object("a_1.csv"), object("ab1.csv"), object("a%2.csv"), object("a\\3.csv")],
      modifiedPolicy: "ignore",
    });
    const second = await startRun(db, { ingestionId: ingestion.id, trigger: "upstream" });
    await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: second.id,
      files: [object("z.csv")],
      modifiedPolicy: "ignore",
    });
    const paths = async (filter: Parameters<typeof listFiles>[2]) =>
      (await listFiles(db, ingestion.id, filter)).map((file) =>
        file.filePath.slice("s3://landing/orders/".length),
      );

    // `_` and `%` are not wildcards, nor is the backslash an escape.
    expect(await paths({ pathPrefix: "s3://landing/orders/a_" })).toEqual(["a_1.csv"]);
    expect(await paths({ pathPrefix: "s3://landing/orders/a%" })).toEqual(["a%2.csv"]);
    expect(await paths({ pathPrefix: "s3://landing/orders/a\\" })).toEqual(["a\\3.csv"]);
    expect(await paths({ runId: second.id })).toEqual(["z.csv"]);
    // Registration goes in path order, so ids do too.
    expect(await paths({ runId: run.id, limit: 2 })).toEqual(["a%2.csv", "a\\3.csv"]);
    const [first] = await listFiles(db, ingestion.id, { limit: 1 });
    expect(await paths({ updatedSince: new Date(first!.updatedAt.getTime() + 3_600_000) })).toEqual([]);
    expect(await paths({ updatedSince: first!.updatedAt, pathPrefix: "s3://landing/orders/z" })).toEqual([
      "z.csv",
    ]);
    await expect(listFiles(db, ingestion.id, { updatedSince: new Date("nope") })).rejects.toThrow(
      /updatedSince/,
    );

    expect((await getFileById(db, first!.id))?.filePath).toBe(first!.filePath);
    expect(await getFileById(db, 987_654)).toBeUndefined();
    const byId = await getFilesByIds(db, [first!.id, 987_654, first!.id]);
    expect([...byId.keys()]).toEqual([first!.id]);
    expect((await getRun(db, second.id))?.trigger).toBe("upstream");
    expect(await getRun(db, 987_654)).toBeUndefined();
  });

  it("reads every field of a file alike by id, by ids and by paths (the bulk lookups bypass Prisma)", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db);
    const { created } = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: [object("full.csv"), object("bare.csv")],
      modifiedPolicy: "ignore",
    });
    const full = created.find((ref) => ref.path.endsWith("full.csv"))!;
    // Every nullable column set, 64-bit values at their limits.
    await db.pool.query(
      `UPDATE processed_files SET status = 'SUCCESS', processing_started_at = now(), processed_at = now(),
         records_ingested = 9007199254740991, bytes_read = 12345678901, processing_duration_ms = 42,
         error_message = 'm', error_type = 't', retry_count = 2, attempts = 3, lease_owner = 'w',
         lease_expires_at = now(), batch_id = gen_random_uuid(), snapshot_id = 9223372036854775807
       WHERE id = $1`,
      [full.id],
    );
    const ids = created.map((ref) => ref.id);
    const byIds = await getFilesByIds(db, ids);
    const byPaths = await getFilesByPaths(
      db,
      ingestion.id,
      created.map((ref) => ref.path),
    );
    for (const ref of created) {
      const one = await getFileById(db, ref.id);
      expect(byIds.get(ref.id)).toEqual(one);
      expect(byPaths.get(ref.path)).toEqual(one);
    }
    expect(byIds.get(full.id)?.snapshotId).toBe("9223372036854775807");
  });

  it("enables and disables an ingestion by name", async () => {
    const db = await freshDatabase();
    const { ingestion } = await newIngestion(db);
    const disabled = await setIngestionEnabled(db, ingestion.name, false);
    expect(disabled).toMatchObject({ id: ingestion.id, enabled: false });
    expect(disabled!.updatedAt.getTime()).toBeGreaterThanOrEqual(ingestion.updatedAt.getTime());
    expect((await setIngestionEnabled(db, ingestion.name, true))?.enabled).toBe(true);
    expect(await setIngestionEnabled(db, "missing", true)).toBeUndefined();
  });

  it("resets files named by id: FAILED or SKIPPED ones of the ingestion, never SUCCESS", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db);
    const { ingestion: other, run: otherRun } = await newIngestion(db, { name: "other" });
    const { created } = await registerFiles(db, {
      ingestionId: ingestion.id,
      runId: run.id,
      files: [object("ok.csv"), object("bad.csv"), object("new.csv")],
      modifiedPolicy: "ignore",
    });
    const [ok, bad, fresh] = created as [FileRef, FileRef, FileRef];
    const { created: foreign } = await registerFiles(db, {
      ingestionId: other.id,
      runId: otherRun.id,
      files: [object("x.csv")],
      modifiedPolicy: "ignore",
    });
    const theirs = foreign[0]!;
    await claimFiles(db, { refs: [ok, bad, theirs], worker: "w", leaseMs: 60_000 });
    await recordOutcomes(db, {
      worker: "w",
      outcomes: [
        { id: ok.id, version: 1, status: "SUCCESS" },
        { id: bad.id, version: 1, status: "FAILED", errorType: "X" },
        { id: theirs.id, version: 1, status: "FAILED", errorType: "X" },
      ],
    });
    const reset = await resetFilesForRetry(db, ingestion.id, {
      fileIds: [ok.id, bad.id, fresh.id, theirs.id],
    });
    expect(reset.map((ref) => ref.id)).toEqual([bad.id]);
    expect((await getFileById(db, bad.id))?.status).toBe("PENDING");
    expect((await getFileById(db, ok.id))?.status).toBe("SUCCESS");
    expect((await getFileById(db, theirs.id))?.status).toBe("FAILED");
    await expect(resetFilesForRetry(db, ingestion.id, { fileIds: [1], path: "s3://x/y" })).rejects.toThrow(
      /either a path or file ids/,
    );
  });

  it("records a submission's answer once per request id; the first recorded stands", async () => {
    const db = await freshDatabase();
    const { ingestion, run } = await newIngestion(db);
    expect(await findSubmissionRequest(db, ingestion.id, "r1")).toBeUndefined();
    const first = await recordSubmissionRequest(db, {
      ingestionId: ingestion.id,
      requestId: "r1",
      requestHash: "h1",
      runId: run.id,
      response: { status: 202, body: { accepted: 1 } },
    });
    const second = await recordSubmissionRequest(db, {
      ingestionId: ingestion.id,
      requestId: "r1",
      requestHash: "h2",
      runId: null,
      response: { status: 422 },
    });
    expect(second).toEqual(first);
    expect(await findSubmissionRequest(db, ingestion.id, "r1")).toMatchObject({
      requestHash: "h1",
      runId: run.id,
      response: { status: 202, body: { accepted: 1 } },
    });
  });
});
