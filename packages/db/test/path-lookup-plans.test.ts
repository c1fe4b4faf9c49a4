import { describe, expect, it, onTestFinished } from "vitest";
import {
  createDatabase,
  getFile,
  getFilesByPaths,
  registerFiles,
  resetFilesForRetry,
  type Database,
} from "../src/index.ts";
import { databaseUrl, freshDatabase, listing, newIngestion } from "./helpers.ts";

/**
 * A look-up by path must use the path key index whatever the statistics say. The case that went wrong: a
 * new ingestion's files registered after the table was last analyzed, so the planner believes the
 * ingestion has about one file and reads its whole (ingestion_id, status, id) range instead, hashing every
 * path (0.4-2 s a look-up in a bulk submission). Each statement's plan is read through auto_explain,
 * sent to this connection as a notice.
 */
describe("look-ups by path", () => {
  it("probe the path key index even when statistics say the ingestion is empty", async () => {
    const db = await freshDatabase();
    await db.pool.query("ALTER TABLE processed_files SET (autovacuum_enabled = false)");
    const old = await newIngestion(db, { name: "old" });
    await registerFiles(db, {
      ingestionId: old.ingestion.id,
      runId: old.run.id,
      files: listing(0, 2_000).map((f) => ({ ...f, uri: f.uri.replace("/orders/", "/old/") })),
      modifiedPolicy: "ignore",
    });
    await db.pool.query("ANALYZE processed_files");
    // Registered after the statistics were taken: the planner thinks this ingestion has no files.
    const { ingestion, run } = await newIngestion(db, { name: "new" });
    const files = listing(0, 4_000);
    for (let start = 0; start < files.length; start += 1_000) {
      await registerFiles(db, {
        ingestionId: ingestion.id,
        runId: run.id,
        files: files.slice(start, start + 1_000),
        modifiedPolicy: "ignore",
      });
    }
    await db.pool.query("UPDATE processed_files SET status = 'FAILED' WHERE file_path = $1", [files[7]!.uri]);

    const explained = await withPlans(db);
    const wanted = files.slice(100, 140).map((f) => f.uri);
    expect((await explained.plansOf(() => getFilesByPaths(explained.db, ingestion.id, wanted))).size).toBe(
      40,
    );
    expect(await explained.plansOf(() => getFile(explained.db, ingestion.id, files[3]!.uri))).toMatchObject({
      filePath: files[3]!.uri,
    });
    expect(
      await explained.plansOf(() =>
        registerFiles(explained.db, {
          ingestionId: ingestion.id,
          runId: run.id,
          files: files.slice(200, 240),
          modifiedPolicy: "ignore",
          reportKnown: true,
        }),
      ),
    ).toMatchObject({ created: [], known: { length: 40 } });
    expect(
      await explained.plansOf(() => resetFilesForRetry(explained.db, ingestion.id, { path: files[7]!.uri })),
    ).toHaveLength(1);

    expect(explained.plans).toHaveLength(4);
    for (const plan of explained.plans) {
      expect(plan).toContain("processed_files_file_path_key_ingestion_id_key");
      // The ingestion's range read, filtered by hashing each path: what stale statistics used to cost.
      expect(plan).not.toMatch(
        /processed_files_ingestion_id_status_id_idx[^\n]*\n\s*Index Cond: \(ingestion_id = /,
      );
    }
  });
});

/** A one-connection Database of the same schema whose statements' plans are collected. */
async function withPlans(
  source: Database,
): Promise<{ db: Database; plans: string[]; plansOf<T>(run: () => Promise<T>): Promise<T> }> {
  const db = createDatabase({ connectionString: databaseUrl(), schema: source.schema, maxConnections: 1 });
  onTestFinished(() => db.close());
  const notices: string[] = [];
  db.pool.on("connect", (client) => client.on("notice", (notice) => notices.push(notice.message ?? "")));
  await db.pool.query(
    "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_level = notice",
  );
  const plans: string[] = [];
  return {
    db,
    plans,
    async plansOf(run) {
      notices.length = 0;
      const result = await run();
      plans.push(notices.filter((n) => n.includes("processed_files")).join("\n"));
      return result;
    },
  };
}
