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
  it("probe the path key index even when statistics say the ingestion is empty", async (context) => {
    const db = await freshDatabase();
    const { rows } = await db.pool.query<{ super: boolean }>(
      "SELECT rolsuper AS super FROM pg_roles WHERE rolname = current_user",
    );
    // auto_explain is loaded by superusers only (the services scripts' role is one).
    if (!rows[0]!.super)
      context.skip("reading plans needs LOAD 'auto_explain': DATABASE_URL's role is no superuser");
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
    for (const [i, plan] of explained.plans.entries()) {
      const scans = scansOf(plan);
      // A probe of the key index, and nothing that reads the ingestion's range or the whole table.
      expect(
        scans.some((scan) => scan.index === KEY_INDEX && /Index Scan/.test(scan.node)),
        `statement ${i} probes ${KEY_INDEX}: ${JSON.stringify(scans)}`,
      ).toBe(true);
      for (const scan of scans) {
        expect(scan, `statement ${i}`).not.toMatchObject({ node: "Seq Scan" });
        expect(scan, `statement ${i}`).not.toMatchObject({
          index: "processed_files_ingestion_id_status_id_idx",
        });
      }
    }
  });
});

const KEY_INDEX = "processed_files_file_path_key_key";

interface PlanNode {
  "Node Type": string;
  "Relation Name"?: string;
  "Index Name"?: string;
  Plans?: PlanNode[];
}

/** The scans of processed_files (and the index scans under its bitmap scans) in auto_explain's JSON plans. */
function scansOf(plans: PlanNode[]): { node: string; index?: string }[] {
  const scans: { node: string; index?: string }[] = [];
  const visit = (node: PlanNode, underFiles: boolean) => {
    const files = node["Relation Name"] === "processed_files";
    if (files || (underFiles && node["Index Name"] !== undefined)) {
      scans.push({ node: node["Node Type"], ...(node["Index Name"] ? { index: node["Index Name"] } : {}) });
    }
    for (const child of node.Plans ?? []) visit(child, files);
  };
  plans.forEach((plan) => visit(plan, false));
  return scans;
}

/** A one-connection Database of the same schema that collects the plans of the statements `plansOf` runs. */
async function withPlans(source: Database): Promise<{
  db: Database;
  plans: PlanNode[][];
  plansOf<T>(run: () => Promise<T>): Promise<T>;
}> {
  const db = createDatabase({ connectionString: databaseUrl(), schema: source.schema, maxConnections: 1 });
  onTestFinished(() => db.close());
  const notices: string[] = [];
  db.pool.on("connect", (client) => client.on("notice", (notice) => notices.push(notice.message ?? "")));
  const plans: PlanNode[][] = [];
  return {
    db,
    plans,
    async plansOf(run) {
      // Set on the pool's one connection right before, so a connection the pool replaced is set up too.
      await db.pool.query(
        "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_level = notice; " +
          "SET auto_explain.log_format = json",
      );
      notices.length = 0;
      const result = await run();
      plans.push(
        notices
          .filter((notice) => notice.includes("plan:"))
          .map((notice) => (JSON.parse(notice.slice(notice.indexOf("{"))) as { Plan: PlanNode }).Plan),
      );
      return result;
    },
  };
}
