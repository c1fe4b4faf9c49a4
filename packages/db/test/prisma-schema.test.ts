import { describe, expect, it } from "vitest";
import { FILE_STATUSES } from "../src/types.ts";
import { freshDatabase } from "./helpers.ts";

const snake = (field: string) => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** The table's columns, from the catalog. */
async function columnsOf(db: Awaited<ReturnType<typeof freshDatabase>>, table: string): Promise<string[]> {
  const { rows } = await db.pool.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`,
    [db.schema, table],
  );
  return rows.map((r) => r.column_name).sort();
}

describe("schema.prisma and the SQL migration agree", () => {
  it("round-trips every model, every field set, through the Prisma client on the migrated schema", async () => {
    const db = await freshDatabase();
    const { prisma } = db;
    const at = new Date("2026-11-29T10:00:00.123Z");
    const batchId = "5d3b1a52-7f2e-4c51-9b0e-1f6a1c0d2e3f";

    const ingestion = await prisma.ingestion.create({
      data: {
        name: "prisma",
        sourceUri: "s3://b/p/",
        format: "json",
        readerOptions: { multiLine: "true" },
        schemaDdl: "id INT",
        glob: "**/*.json",
        targetTable: "lake.db.p",
        schedule: "*/5 * * * *",
        maxAttempts: 7,
        backoffMs: 250,
        modifiedPolicy: "replace",
        listing: { mode: "incremental", startAfter: true },
        listingCursor: { after: "k" },
        cleanSource: { mode: "move", moveTo: "s3://b/archive/", retentionMs: 1 },
        badRecords: { onError: "continue", maxBadRecords: { percent: 1 } },
        enabled: false,
      },
    });
    const run = await prisma.run.create({
      data: {
        ingestionId: ingestion.id,
        trigger: "upstream",
        status: "failed",
        finishedAt: at,
        filesFound: 3,
        filesNew: 2,
        filesModified: 1,
        errorType: "ListingError",
        errorMessage: "boom",
      },
    });
    const batch = await prisma.writeBatch.create({
      data: {
        id: batchId,
        ingestionId: ingestion.id,
        tableName: "lake.db.p",
        state: "COMMITTED",
        worker: "w",
        resolvedAt: at,
        snapshotId: 9223372036854775807n,
        fileCount: 1,
        errorMessage: null,
        stagedSnapshotId: -9223372036854775808n,
        rejectedStagedSnapshotId: 9223372036854775806n,
        ingestedAtMicros: 1_700_000_000_000_000n,
        publishUntil: at,
        sourcesCleanedAt: at,
      },
    });
    const file = await prisma.processedFile.create({
      data: {
        ingestionId: ingestion.id,
        filePath: "s3://b/p/a.json",
        fileSize: 5_000_000_000n,
        modifiedAt: at,
        etag: "etag",
        version: 2,
        status: "SUCCESS",
        processingStartedAt: at,
        processedAt: at,
        recordsIngested: 10n,
        recordsParsed: 12n,
        recordsRejected: 2n,
        firstError: "record 3: malformed JSON: {",
        bytesRead: 5_000_000_000n,
        processingDurationMs: 12,
        errorMessage: null,
        errorType: null,
        retryCount: 1,
        attempts: 2,
        runId: run.id,
        leaseOwner: "w",
        leaseExpiresAt: at,
        batchId,
        snapshotId: -1n,
        versions: {
          create: [
            {
              version: 1,
              etag: "old",
              fileSize: 1n,
              modifiedAt: at,
              runId: run.id,
              status: "SKIPPED",
              errorType: "SUPERSEDED",
            },
            {
              version: 2,
              etag: "etag",
              fileSize: 5_000_000_000n,
              modifiedAt: at,
              runId: run.id,
              status: "SUCCESS",
              recordsIngested: 10n,
              recordsParsed: 12n,
              recordsRejected: 2n,
              firstError: "record 3: malformed JSON: {",
              snapshotId: 42n,
              batchId,
              processedAt: at,
              errorMessage: null,
            },
          ],
        },
        attemptHistory: {
          create: [
            {
              version: 2,
              attempt: 1,
              worker: "w",
              outcome: "RETRY",
              errorType: "SparkUnavailable",
              finishedAt: at,
              counted: false,
            },
            {
              version: 2,
              attempt: 2,
              worker: "w",
              batchId,
              outcome: "SUCCESS",
              recordsIngested: 10n,
              durationMs: 12,
              finishedAt: at,
              errorMessage: null,
            },
          ],
        },
        batchMembers: {
          create: [
            {
              batchId: batch.id,
              version: 2,
              records: 10n,
              recordsParsed: 12n,
              recordsRejected: 2n,
              firstError: "record 3: malformed JSON: {",
            },
          ],
        },
        sourceCleanups: {
          create: [
            {
              version: 2,
              batchId,
              action: "moved",
              cleanedAt: at,
              movedTo: "s3://b/archive/a.json",
              attempts: 2,
              lastTriedAt: at,
              errorMessage: "throttled",
            },
          ],
        },
      },
    });

    const submission = await prisma.submissionRequest.create({
      data: {
        ingestionId: ingestion.id,
        requestId: "req-1",
        requestHash: "abc",
        runId: run.id,
        response: { status: 202, body: { accepted: 1 } },
      },
    });

    const refusal = await prisma.runRefusal.create({
      data: { runId: run.id, path: "../outside.json", reason: "leaves the source" },
    });

    const loaded = await prisma.ingestion.findUniqueOrThrow({
      where: { name: "prisma" },
      include: {
        runs: { include: { versions: true, submissions: true, refusals: true } },
        submissions: { include: { run: true } },
        batches: { include: { files: true } },
        files: {
          include: {
            versions: true,
            attemptHistory: true,
            batchMembers: true,
            sourceCleanups: true,
            ingestion: true,
          },
        },
      },
    });
    expect(loaded).toMatchObject({
      readerOptions: { multiLine: "true" },
      badRecords: { onError: "continue", maxBadRecords: { percent: 1 } },
      listingCursor: { after: "k" },
      enabled: false,
    });
    expect(loaded.runs[0]).toMatchObject({ trigger: "upstream", status: "failed", filesModified: 1 });
    expect(loaded.runs[0]!.versions).toHaveLength(2);
    expect(loaded.runs[0]!.submissions.map((r) => r.requestId)).toEqual(["req-1"]);
    expect(loaded.runs[0]!.refusals).toMatchObject([
      { runId: run.id, path: "../outside.json", reason: "leaves the source" },
    ]);
    expect(loaded.submissions[0]).toMatchObject({
      requestHash: "abc",
      response: { status: 202, body: { accepted: 1 } },
      run: { id: run.id },
    });
    expect(loaded.batches[0]).toMatchObject({
      state: "COMMITTED",
      snapshotId: 9223372036854775807n,
      stagedSnapshotId: -9223372036854775808n,
      rejectedStagedSnapshotId: 9223372036854775806n,
      ingestedAtMicros: 1_700_000_000_000_000n,
      publishUntil: at,
    });
    expect(loaded.batches[0]!.files).toEqual([
      {
        batchId,
        fileId: file.id,
        version: 2,
        records: 10n,
        recordsParsed: 12n,
        recordsRejected: 2n,
        firstError: "record 3: malformed JSON: {",
      },
    ]);
    const f = loaded.files[0]!;
    // A plain reference, not a relation: it keeps naming its run once the run is pruned.
    expect(f.runId).toBe(run.id);
    expect(f).toMatchObject({
      fileSize: 5_000_000_000n,
      snapshotId: -1n,
      batchId,
      leaseExpiresAt: at,
      status: "SUCCESS",
      recordsParsed: 12n,
      recordsRejected: 2n,
    });
    expect(f.versions.map((v) => [v.version, v.status])).toEqual([
      [1, "SKIPPED"],
      [2, "SUCCESS"],
    ]);
    expect(f.attemptHistory.map((a) => [a.outcome, a.counted]).sort()).toEqual([
      ["RETRY", false],
      ["SUCCESS", true],
    ]);
    expect(f.batchMembers).toHaveLength(1);
    expect(f.sourceCleanups).toMatchObject([{ action: "moved", cleanedAt: at, attempts: 2 }]);

    // Both directions: every Prisma field is a column, and every column is a Prisma field.
    const models: [string, Record<string, unknown>][] = [
      ["ingestions", ingestion],
      ["runs", run],
      ["processed_files", file],
      ["file_versions", f.versions[0]!],
      ["file_attempts", f.attemptHistory[0]!],
      ["write_batches", batch],
      ["write_batch_files", f.batchMembers[0]!],
      ["submission_requests", submission],
      ["run_refusals", refusal],
      ["source_cleanups", f.sourceCleanups[0]!],
    ];
    for (const [table, row] of models) {
      expect({ table, columns: await columnsOf(db, table) }).toEqual({
        table,
        columns: Object.keys(row).map(snake).sort(),
      });
    }

    // Cascades declared in both places: deleting the ingestion removes everything under it.
    await prisma.ingestion.delete({ where: { id: ingestion.id } });
    const counts = await Promise.all([
      prisma.run.count(),
      prisma.processedFile.count(),
      prisma.fileVersion.count(),
      prisma.fileAttempt.count(),
      prisma.writeBatch.count(),
      prisma.writeBatchFile.count(),
      prisma.submissionRequest.count(),
      prisma.runRefusal.count(),
      prisma.sourceCleanup.count(),
    ]);
    expect(counts).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it("declares the same enum values as the migration", async () => {
    const db = await freshDatabase();
    const enums = await import("../src/generated/prisma/enums.ts");
    const { rows } = await db.pool.query<{ typname: string; labels: string[] }>(
      `SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)::text[] AS labels
       FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid JOIN pg_namespace n ON n.oid = t.typnamespace
       WHERE n.nspname = $1 GROUP BY t.typname ORDER BY t.typname`,
      [db.schema],
    );
    const inSql = Object.fromEntries(rows.map((r) => [r.typname, r.labels]));
    const inPrisma = {
      attempt_outcome: Object.values(enums.AttemptOutcome),
      batch_state: Object.values(enums.BatchState),
      file_status: Object.values(enums.FileStatus),
      modified_policy: Object.values(enums.ModifiedPolicy),
      run_status: Object.values(enums.RunStatus),
      run_trigger: Object.values(enums.RunTrigger),
    };
    expect(inSql).toEqual(inPrisma);
    // The statuses the code enumerates (listFiles reads one index range per status): a status added to the
    // enum but not to this list would leave its files out of every unfiltered listing.
    expect([...FILE_STATUSES].sort()).toEqual([...(inSql.file_status ?? [])].sort());
  });
});
