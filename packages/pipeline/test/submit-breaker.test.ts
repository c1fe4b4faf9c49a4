/**
 * The worker's submit queue has the ingest queue's outage breaker (real Redis, Postgres, and S3 on moto
 * behind a TCP proxy that refuses connections while "storage is down"): a submission that meets the outage
 * pauses the queue without spending an attempt, `breaker:changed` says so for the submit queue, and the
 * breaker closes once a submission gets through.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { FaultProxy } from "@lakeferry/fault-proxy";
import { getRun } from "@lakeferry/db";
import { afterEach, describe, expect, it } from "vitest";
import { s3Fixture } from "../../storage/test/fixtures.ts";
import { PipelineEvents, type BreakerChangedEvent } from "../src/index.ts";
import { createWorld, env, eventually, jsonRows, type TestWorld } from "./support.ts";

const run = promisify(execFile);
// Beside the queue package, the one package that may import BullMQ.
const PRODUCER = join(import.meta.dirname, "../../queue/test/fixtures/foreign-producer.mjs");

let world: TestWorld | undefined;
let proxy: FaultProxy | undefined;
afterEach(async () => {
  await world?.close();
  await proxy?.close();
  world = undefined;
  proxy = undefined;
});

describe("the submit queue's outage breaker", () => {
  it("pauses submissions while storage is down, announced for the submit queue, and closes once one gets through", async () => {
    const w = (world = await createWorld());
    const container = await s3Fixture.createContainer("breaker");
    await container.put("in/a.json", jsonRows(0, 2));
    const moto = new URL(process.env.AWS_ENDPOINT_URL_S3 ?? "");
    const p = (proxy = new FaultProxy({ target: { host: moto.hostname, port: Number(moto.port) } }));
    await p.start();
    p.refuse(true);
    const ingestion = await w.ingestion({ source: `${container.rootUri}in/` });

    const events = new PipelineEvents();
    const changes: BreakerChangedEvent[] = [];
    events.on("breaker:changed", (event) => changes.push(event));
    await w.worker({
      events,
      storeOptions: () => ({ env: process.env, endpoint: `http://127.0.0.1:${p.port}`, maxRetries: 0 }),
    });
    // The producer waits for its job's verdict (it allows 3 attempts).
    const produced = run(process.execPath, [
      PRODUCER,
      env.redisUrl,
      w.prefix,
      "submit-paths",
      JSON.stringify({ ingestion: ingestion.name, paths: ["a.json"] }),
    ]);

    await eventually(
      "the submit queue's breaker open",
      async () => (changes.some((c) => c.state === "open") ? true : undefined),
      30_000,
      50,
    );
    expect(changes[0]).toMatchObject({ queue: "lakeferry-submit", state: "open", outage: "storage" });
    expect(changes[0]?.pauseMs).toBeGreaterThan(0);
    // Storage stays down through a few pauses: the job is tried again and again, spending no attempt.
    await eventually(
      "more outage pauses",
      async () => (changes.filter((c) => c.state === "open").length >= 3 ? true : undefined),
      30_000,
      50,
    );
    p.refuse(false);

    const { stdout } = await produced;
    const verdict = JSON.parse(stdout) as {
      state: string;
      returnvalue?: { runId: number; accepted: number };
    };
    expect(verdict).toMatchObject({ state: "completed", returnvalue: { accepted: 1 } });
    // (The ingest queue's breaker, which the accepted file may meet next, is not this test's.)
    const submits = changes.filter((c) => c.queue === "lakeferry-submit");
    expect(submits.at(-1)).toEqual({
      queue: "lakeferry-submit",
      state: "closed",
      outage: "none",
      pauseMs: 0,
    });
    // Each try met the outage before it registered anything; the try that got through did the work.
    expect(await getRun(w.db, verdict.returnvalue?.runId ?? 0)).toMatchObject({
      status: "succeeded",
      filesNew: 1,
    });
  });
});
