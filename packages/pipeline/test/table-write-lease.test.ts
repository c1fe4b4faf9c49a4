/** The fleet-wide table write lease, against the real Postgres. */
import { afterEach, describe, expect, it } from "vitest";
import { TableClaimGate, TableWriteLeases } from "../src/index.ts";
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

  it("a write is renewed for as long as it said it may last, then lets the next writer in", async () => {
    const w = (world = await createWorld());
    const options = { db: w.db, logger: w.logger, pollMs: 20, ttlMs: 300 };
    const slow = new TableWriteLeases({ ...options, holder: "worker-1" });
    const other = new TableWriteLeases({ ...options, holder: "worker-2" });
    const signal = new AbortController().signal;

    // Without holdMs a lease is kept up to 4 × ttl: a write stuck but alive lets the others in after that.
    const stuck = await slow.acquire("lake.ns.t", signal);
    let started = performance.now();
    await (
      await other.acquire("lake.ns.t", signal)
    )();
    expect(performance.now() - started).toBeGreaterThanOrEqual(900);
    expect(performance.now() - started).toBeLessThan(1_500 + 1_000);
    await stuck();

    // A long write (a compaction, a large file) keeps the table for its whole deadline.
    const long = await slow.acquire("lake.ns.t", signal, { holdMs: 3_000 });
    started = performance.now();
    const next = other.acquire("lake.ns.t", signal);
    expect(await pending(next, 2_000)).toBe(true);
    await (
      await next
    )();
    expect(performance.now() - started).toBeGreaterThanOrEqual(2_700);
    await long();
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

describe("TableClaimGate", () => {
  function fleet(w: TestWorld, deferMaxMs = 10_000) {
    return ["worker-1", "worker-2"].map((holder) => {
      const leases = new TableWriteLeases({ db: w.db, holder, logger: w.logger, pollMs: 20 });
      return { leases, gate: new TableClaimGate({ leases, logger: w.logger, pollMs: 20, deferMaxMs }) };
    });
  }

  it("lets one worker claim a table's files; the other waits until that one lets go", async () => {
    const w = (world = await createWorld());
    const [a, b] = fleet(w);
    const signal = new AbortController().signal;

    const first = await a!.gate.enter("lake.ns.t", signal);
    // The same worker's next jobs pass at once; another table is not held up.
    const second = await a!.gate.enter("lake.ns.t", signal);
    (await b!.gate.enter("lake.ns.u", signal)).leave();
    const waiting = b!.gate.enter("lake.ns.t", signal);
    expect(await pending(waiting)).toBe(true);

    first.leave();
    expect(await pending(waiting)).toBe(true);
    // Its last job done without a write: the reservation is given back and the other worker passes.
    second.leave();
    (await waiting).leave();
  });

  it("the next write of the table takes over the reservation and holds the others off until it ends", async () => {
    const w = (world = await createWorld());
    const [a, b] = fleet(w);
    const signal = new AbortController().signal;

    const pass = await a!.gate.enter("lake.ns.t", signal);
    // The write takes the gate's lease over at once (it would wait behind another holder).
    const release = await a!.leases.acquire("lake.ns.t", signal);
    expect(a!.leases.withdraw("lake.ns.t")).toBeUndefined();
    pass.leave();
    const waiting = b!.gate.enter("lake.ns.t", signal);
    expect(await pending(waiting)).toBe(true);
    // While the write runs, the writer's own new jobs still pass at once.
    (await a!.gate.enter("lake.ns.t", signal)).leave();

    await release();
    (await waiting).leave();
  });

  it("a write of the worker already waiting for the lease takes over the one its gate took", async () => {
    const w = (world = await createWorld());
    const [a, b] = fleet(w);
    const signal = new AbortController().signal;
    const releaseOther = await b!.leases.acquire("lake.ns.t", signal);
    const write = a!.leases.acquire("lake.ns.t", signal);
    expect(await pending(write)).toBe(true);

    await releaseOther();
    // Whoever of the two asks first gets the lease, the waiting write ends up with it: no lapse to wait for.
    const pass = await a!.gate.enter("lake.ns.t", signal);
    const release = await write;
    pass.leave();
    expect(a!.leases.withdraw("lake.ns.t")).toBeUndefined();
    const next = b!.gate.enter("lake.ns.t", signal);
    expect(await pending(next)).toBe(true);
    await release();
    (await next).leave();
  });

  it("a lease the gate took and no write took over is given back after the lease's ttl", async () => {
    const w = (world = await createWorld());
    const [a, b] = ["worker-1", "worker-2"].map((holder) => {
      const leases = new TableWriteLeases({ db: w.db, holder, logger: w.logger, pollMs: 20, ttlMs: 600 });
      return { leases, gate: new TableClaimGate({ leases, logger: w.logger, pollMs: 20 }) };
    });
    const signal = new AbortController().signal;
    // A job that passed and never gets written (it waits on something else) holds the others off only so long.
    const pass = await a!.gate.enter("lake.ns.t", signal);
    const started = performance.now();
    (await b!.gate.enter("lake.ns.t", signal)).leave();
    expect(performance.now() - started).toBeGreaterThanOrEqual(500);
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(a!.leases.withdraw("lake.ns.t")).toBeUndefined();
    pass.leave();
  });

  it("claims anyway after deferMaxMs, and gives up with the job's signal", async () => {
    const w = (world = await createWorld());
    const [a, b] = fleet(w, 400);
    const pass = await a!.gate.enter("lake.ns.t", new AbortController().signal);

    const started = performance.now();
    (await b!.gate.enter("lake.ns.t", new AbortController().signal)).leave();
    expect(performance.now() - started).toBeGreaterThanOrEqual(380);

    const controller = new AbortController();
    const waiting = b!.gate.enter("lake.ns.t", controller.signal);
    controller.abort(new Error("shutting down"));
    await expect(waiting).rejects.toThrow("shutting down");
    pass.leave();
  });
});
