import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { getRun, listFiles, listRefusals, runReport } from "@lakeferry/db";
import { afterEach, describe, expect, it } from "vitest";
import { waitForRun } from "../src/index.ts";
import { createWorld, env, jsonRows, rowsPerFile, type TestWorld } from "./support.ts";

const run = promisify(execFile);
// Beside the queue package, the one package that may import BullMQ.
const PRODUCER = join(import.meta.dirname, "../../queue/test/fixtures/foreign-producer.mjs");

let world: TestWorld | undefined;
afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** Runs the producer that imports nothing from lakeferry; its verdict on the job it added. */
async function produce(w: TestWorld, name: string, data: unknown): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, [
    PRODUCER,
    env.redisUrl,
    w.prefix,
    name,
    JSON.stringify(data),
  ]);
  return JSON.parse(stdout) as Record<string, unknown>;
}

describe("the lakeferry-submit queue", () => {
  it("registers and ingests paths a foreign BullMQ producer adds, keeps the refused ones with the run, and fails bad jobs with the reason", async () => {
    const w = (world = await createWorld());
    const a = await w.file("a.json", jsonRows(0, 2));
    const b = await w.file("in/b.json", jsonRows(2, 3));
    const ingestion = await w.ingestion();
    await w.worker();

    // Bad jobs fail at once, for good, saying why.
    const unknown = await produce(w, "submit-paths", { ingestion: "nope", paths: ["a.json"] });
    expect(unknown).toMatchObject({ state: "failed" });
    expect(unknown.failedReason).toMatch(/no ingestion is named "nope"/);
    const misspelt = await produce(w, "submit-paths", { ingestion: ingestion.name, path: ["a.json"] });
    expect(misspelt).toMatchObject({ state: "failed" });
    expect(misspelt.failedReason).toMatch(/invalid job data: .*paths/);
    const misnamed = await produce(w, "submit", { ingestion: ingestion.name, paths: ["a.json"] });
    expect(misnamed).toMatchObject({ state: "failed" });
    expect(misnamed.failedReason).toMatch(/takes "submit-paths" jobs only/);

    const done = await produce(w, "submit-paths", {
      ingestion: ingestion.name,
      paths: ["a.json", b, "../outside.json", "missing.json"],
    });
    expect(done.state).toBe("completed");
    const answer = done.returnvalue as {
      runId: number;
      accepted: number;
      refused: number;
      firstRefused: { path: string }[];
    };
    expect(answer).toMatchObject({ accepted: 2, refused: 2 });
    expect(answer.firstRefused.map((r) => r.path).sort()).toEqual(["../outside.json", "missing.json"]);

    // What became of every path is in Postgres, for the API and `lakeferry runs`.
    expect(await getRun(w.db, answer.runId)).toMatchObject({
      trigger: "upstream",
      filesNew: 2,
      filesRefused: 2,
    });
    const refusals = await listRefusals(w.db, answer.runId);
    expect(refusals.map((r) => r.path)).toEqual(["../outside.json", "missing.json"]);
    expect(refusals[0]!.reason).toMatch(/climbs out of the source/);
    expect(refusals[1]!.reason).toMatch(/no such object/);
    expect((await runReport(w.db, answer.runId))?.refused).toEqual(refusals);

    // And the accepted files are ingested like discovered ones.
    expect(await waitForRun(w, answer.runId, { timeoutMs: 90_000 })).toMatchObject({ total: 2, failed: 0 });
    expect(await rowsPerFile(w.spark, ingestion.targetTable)).toEqual({ [a]: 2, [b]: 3 });
    expect((await listFiles(w.db, ingestion.id, {})).map((f) => f.status)).toEqual(["SUCCESS", "SUCCESS"]);

    // Sent again: nothing new, one job per file still.
    const again = await produce(w, "submit-paths", { ingestion: ingestion.name, paths: ["a.json"] });
    expect(again).toMatchObject({
      state: "completed",
      returnvalue: { accepted: 1, refused: 0, firstRefused: [] },
    });
  });
});
