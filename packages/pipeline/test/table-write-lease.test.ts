/** The fleet-wide table write lease, against the real Postgres. */
import { afterEach, describe, expect, it } from "vitest";
import { TableWriteLeases } from "../src/index.ts";
import { createWorld, type TestWorld } from "./support.ts";

let world: TestWorld | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** Whether a promise is still pending after the event loop had a moment. */
async function pending(promise: Promise<unknown>, ms = 300): Promise<boolean> {
  const marker = Symbol("pending");
  return (await Promise.race([promise, new Promise((r) => setTimeout(() => r(marker), ms))])) === marker;
}

describe("TableWriteLeases", () => {
  it("one writer per table: two writes of one worker wait for each other, and each releases only its own", async () => {
    const w = (world = await createWorld());
    const leases = new TableWriteLeases({ db: w.db, holder: "worker-1", logger: w.logger, pollMs: 20 });
    const other = new TableWriteLeases({ db: w.db, holder: "worker-2", logger: w.logger, pollMs: 20 });
    const signal = new AbortController().signal;

    const releaseFirst = await leases.acquire("lake.ns.t", signal);
    // The same worker's second write waits: a lease is held per write, not per process.
    const second = leases.acquire("lake.ns.t", signal);
    expect(await pending(second)).toBe(true);
    // Another table is not held up.
    const releaseOtherTable = await other.acquire("lake.ns.u", signal);

    await releaseFirst();
    const releaseSecond = await second;
    // Releasing the first write again (or late) does not free the second's lease.
    await releaseFirst();
    const third = other.acquire("lake.ns.t", signal);
    expect(await pending(third)).toBe(true);
    await releaseSecond();
    await (
      await third
    )();
    await releaseOtherTable();
  });

  it("a waiting write gives up with its signal's reason when aborted", async () => {
    const w = (world = await createWorld());
    const leases = new TableWriteLeases({ db: w.db, holder: "worker-1", logger: w.logger, pollMs: 20 });
    const release = await leases.acquire("lake.ns.t", new AbortController().signal);
    const controller = new AbortController();
    const waiting = leases.acquire("lake.ns.t", controller.signal);
    controller.abort(new Error("shutting down"));
    await expect(waiting).rejects.toThrow("shutting down");
    await release();
  });
});
