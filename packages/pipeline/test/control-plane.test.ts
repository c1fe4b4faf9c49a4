import { InvalidInputError } from "@lakeferry/core";
import { listRuns, statusCounts } from "@lakeferry/db";
import { afterEach, describe, expect, it } from "vitest";
import { DiscoveryQueue } from "@lakeferry/queue";
import { DiscovererRuntime, discoverFiles, submitFiles } from "../src/index.ts";
import { createWorld, env, eventually, jsonRows, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

describe("submitFiles (upstream enqueueing)", () => {
  it("accepts paths inside the source, refuses the rest clearly, and makes one job per file however often it is sent", async () => {
    const w = (world = await createWorld());
    const a = await w.file("a.json", jsonRows(0, 1));
    const b = await w.file("sub/b.json", jsonRows(1, 1));
    await w.file("c.txt", "not json\n");
    const ingestion = await w.ingestion();

    const result = await submitFiles(w, ingestion.name, [
      "a.json",
      b,
      "a.json",
      "../outside.json",
      "/etc/passwd",
      "file:///tmp/elsewhere/x.json",
      "s3://bucket/x.json",
      "missing.json",
      "c.txt",
    ]);
    expect(result.accepted.map((file) => file.path).sort()).toEqual([a, b].sort());
    const reasons = Object.fromEntries(result.refused.map((refusal) => [refusal.path, refusal.reason]));
    expect(Object.keys(reasons).sort()).toEqual(
      [
        "../outside.json",
        "/etc/passwd",
        "file:///tmp/elsewhere/x.json",
        "s3://bucket/x.json",
        "missing.json",
        "c.txt",
      ].sort(),
    );
    expect(reasons["../outside.json"]).toMatch(/climbs out of the source/);
    expect(reasons["/etc/passwd"]).toMatch(/outside the source/);
    expect(reasons["file:///tmp/elsewhere/x.json"]).toMatch(/outside the source/);
    expect(reasons["s3://bucket/x.json"]).toMatch(/outside the source/);
    expect(reasons["missing.json"]).toMatch(/no such object/);
    expect(reasons["c.txt"]).toMatch(/does not match the ingestion's pattern/);
    expect(result.run).toMatchObject({ trigger: "upstream", filesNew: 2, status: "succeeded" });
    expect((await w.queue.counts()).waiting).toBe(2);

    // The same path again, and a discovery pass over the same folder: still one job per file.
    const again = await submitFiles(w, ingestion.name, [a]);
    expect(again.accepted.map((file) => file.path)).toEqual([a]);
    expect(again.refused).toEqual([]);
    const discovered = await discoverFiles(w, ingestion);
    expect(discovered).toMatchObject({ found: 2, created: 0, enqueued: 0 });
    expect((await w.queue.counts()).waiting).toBe(2);
    expect((await listRuns(w.db, ingestion.id)).map((run) => run.trigger).sort()).toEqual([
      "manual",
      "upstream",
      "upstream",
    ]);
  });

  it("refuses an unknown ingestion and an empty list", async () => {
    const w = (world = await createWorld());
    await w.ingestion();
    await expect(submitFiles(w, "nope", ["a.json"])).rejects.toThrow(InvalidInputError);
    await expect(submitFiles(w, "nope", ["a.json"])).rejects.toThrow(/no ingestion is named "nope"/);
    await expect(submitFiles(w, "orders", [])).rejects.toThrow(/at least one path/);
  });

  it("fails a submission whole, retryable, while the source's storage is down: no path is refused for it", async () => {
    const w = (world = await createWorld());
    // An S3 endpoint nobody listens on: every lookup is refused at the door (STORAGE_UNAVAILABLE).
    const ingestion = await w.ingestion({
      source: "s3://down-bucket/in/",
      credentials: {
        accessKeyId: { env: "DOWN_KEY" },
        secretAccessKey: { env: "DOWN_SECRET" },
        endpoint: "http://127.0.0.1:9",
      },
    });
    const ctx = {
      ...w,
      storeOptions: () => ({
        env: { DOWN_KEY: "k", DOWN_SECRET: "s", LAKEFERRY_ALLOWED_ENDPOINTS: "127.0.0.1" },
      }),
    };
    const failure = await submitFiles(ctx, ingestion.name, ["a.json", "b.json"]).catch((err: unknown) => err);
    expect(failure).toMatchObject({ code: "STORAGE_UNAVAILABLE", retryable: true, outage: "storage" });
    const [run] = await listRuns(w.db, ingestion.id);
    expect(run).toMatchObject({ status: "failed", errorType: "STORAGE_UNAVAILABLE", filesRefused: 0 });
  });

  it("stops between steps when its process stops, its run finished as interrupted", async () => {
    const w = (world = await createWorld());
    await w.file("a.json", jsonRows(0, 1));
    const ingestion = await w.ingestion({});
    const controller = new AbortController();
    const stopping = new Error("worker closing");
    // The abort lands while the run starts (a Postgres round trip), before anything is registered.
    const ctx = { ...w, storeOptions: () => (setTimeout(() => controller.abort(stopping), 0), {}) };
    const failure = await submitFiles(ctx, ingestion.name, ["a.json"], { signal: controller.signal }).catch(
      (err: unknown) => err,
    );
    expect(failure).toBe(stopping);
    const [run] = await listRuns(w.db, ingestion.id);
    expect(run).toMatchObject({ status: "failed", errorType: "Interrupted", filesNew: 0 });
    expect(await statusCounts(w.db, ingestion.id)).toMatchObject({ PENDING: 0 });
  });

  it("records a storage problem in the discovery run instead of crashing", async () => {
    const w = (world = await createWorld());
    const ingestion = await w.ingestion({ source: `file://${w.dir}/does-not-exist/` });
    const result = await discoverFiles(w, ingestion);
    expect(result.error?.type).toMatch(/^STORAGE_/);
    expect(result.run).toMatchObject({ status: "failed", errorType: result.error?.type });
  });
});

describe("DiscovererRuntime", () => {
  it("syncs cron schedules from the ingestions and runs requested discoveries", async () => {
    const w = (world = await createWorld());
    await w.file("a.json", jsonRows(0, 1));
    const scheduled = await w.ingestion({ name: "scheduled", schedule: "0 3 * * *" });
    const disabled = await w.ingestion({
      name: "disabled",
      schedule: "0 4 * * *",
      enabled: false,
      table: w.table("other"),
    });
    const runtime = new DiscovererRuntime({
      databaseUrl: env.databaseUrl,
      redisUrl: env.redisUrl,
      queuePrefix: w.prefix,
      dbSchema: w.schema,
      logger: w.logger,
    });
    const discovery = new DiscoveryQueue({ redisUrl: env.redisUrl, prefix: w.prefix });
    try {
      await runtime.start();
      const schedules = await discovery.schedules();
      expect(schedules.map((s) => [s.ingestionId, s.cron])).toEqual([[scheduled.id, "0 3 * * *"]]);
      expect(schedules.some((s) => s.ingestionId === disabled.id)).toBe(false);

      await discovery.requestDiscovery(scheduled.id);
      const [run] = await eventually("a discovery run", async () => {
        const runs = await listRuns(w.db, scheduled.id);
        return runs[0]?.status === "succeeded" ? runs : undefined;
      });
      expect(run).toMatchObject({ trigger: "manual", filesNew: 1 });
      expect((await w.queue.counts()).waiting).toBe(1);
    } finally {
      await runtime.close({ timeoutMs: 5_000 });
      await discovery.close();
    }
  });
});

describe("discoverFiles listing modes", () => {
  it("incremental: lists after the saved cursor, and in full when asked", async () => {
    const w = (world = await createWorld());
    await w.file("b.json", jsonRows(0, 1));
    await w.file("c.json", jsonRows(1, 1));
    const ingestion = await w.ingestion({ listing: { mode: "incremental" } });
    expect(await discoverFiles(w, ingestion)).toMatchObject({ found: 2, created: 2 });

    await w.file("d.json", jsonRows(2, 1)); // sorts after the cursor
    await w.file("a.json", jsonRows(3, 1)); // sorts before it: only a full listing sees it
    const incremental = await discoverFiles(w, await w.reload(ingestion.name));
    expect(incremental).toMatchObject({ found: 1, created: 1 });
    const full = await discoverFiles(w, await w.reload(ingestion.name), { full: true });
    expect(full).toMatchObject({ found: 4, created: 1 });
    expect(await discoverFiles(w, await w.reload(ingestion.name))).toMatchObject({ found: 0, created: 0 });
  });

  it("partitions: lists only the date partitions inside the lookback window", async () => {
    const w = (world = await createWorld());
    const day = (daysAgo: number): string => {
      const date = new Date(Date.now() - daysAgo * 86_400_000);
      const pad = (n: number): string => String(n).padStart(2, "0");
      return `day=${date.getUTCFullYear()}-${pad(date.getUTCMonth() + 1)}-${pad(date.getUTCDate())}`;
    };
    await w.file(`${day(0)}/a.json`, jsonRows(0, 1));
    await w.file(`${day(1)}/b.json`, jsonRows(1, 1));
    await w.file(`${day(10)}/old.json`, jsonRows(2, 1));
    const ingestion = await w.ingestion({
      listing: { partitions: { template: "day={yyyy}-{MM}-{dd}/", lookbackDays: 2 } },
    });
    const result = await discoverFiles(w, ingestion);
    expect(result).toMatchObject({ found: 2, created: 2 });
    expect(result.listCalls).toBeLessThanOrEqual(3);
  });
});
