import { InvalidInputError } from "@lakeferry/core";
import { describe, expect, it } from "vitest";
import {
  acquireLeaseInTurn,
  acquireMaintenanceLease,
  releaseMaintenanceLease,
  type Database,
} from "../src/index.ts";
import { eventually, freshDatabase, secondConnection } from "./helpers.ts";

const NAME = "reconciler";

async function leaseRow(
  db: Database,
): Promise<{ holder: string; ms_left: number; acquired_at: Date } | undefined> {
  const { rows } = await db.pool.query<{ holder: string; ms_left: number; acquired_at: Date }>(
    `SELECT holder, acquired_at, (extract(epoch FROM expires_at - now()) * 1000)::float8 AS ms_left
     FROM maintenance_leases WHERE name = $1`,
    [NAME],
  );
  return rows[0];
}

describe("maintenance leases", () => {
  it("has one holder at a time: renewals by the holder, takeover only after expiry or release", async () => {
    const db = await freshDatabase();
    expect(await acquireMaintenanceLease(db, { name: NAME, holder: "a", ttlMs: 60_000 })).toBe(true);
    const taken = await leaseRow(db);
    // Judged by the database clock: the lease runs ttlMs from the database's now().
    expect(taken?.holder).toBe("a");
    expect(taken?.ms_left).toBeGreaterThan(59_000);
    expect(taken?.ms_left).toBeLessThanOrEqual(60_000);

    expect(await acquireMaintenanceLease(db, { name: NAME, holder: "b", ttlMs: 60_000 })).toBe(false);
    expect(await acquireMaintenanceLease(db, { name: NAME, holder: "a", ttlMs: 60_000 })).toBe(true);
    expect((await leaseRow(db))?.acquired_at).toEqual(taken?.acquired_at);
    // Another name is another lease.
    expect(await acquireMaintenanceLease(db, { name: "other", holder: "b", ttlMs: 60_000 })).toBe(true);

    // Only the holder releases; then another takes it at once.
    expect(await releaseMaintenanceLease(db, { name: NAME, holder: "b" })).toBe(false);
    expect(await releaseMaintenanceLease(db, { name: NAME, holder: "a" })).toBe(true);
    expect(await releaseMaintenanceLease(db, { name: NAME, holder: "a" })).toBe(false);
    expect(await acquireMaintenanceLease(db, { name: NAME, holder: "b", ttlMs: 300 })).toBe(true);
    expect(await acquireMaintenanceLease(db, { name: NAME, holder: "a", ttlMs: 300 })).toBe(false);

    // A holder that stops renewing loses it when it expires, and cannot renew it afterwards.
    await eventually("b's lease to expire", async () =>
      (await acquireMaintenanceLease(db, { name: NAME, holder: "a", ttlMs: 60_000 })) ? true : undefined,
    );
    expect(await acquireMaintenanceLease(db, { name: NAME, holder: "b", ttlMs: 60_000 })).toBe(false);
    expect(await releaseMaintenanceLease(db, { name: NAME, holder: "b" })).toBe(false);
    expect((await leaseRow(db))?.holder).toBe("a");
  });

  it("gives a free lease to exactly one of many simultaneous contenders", async () => {
    const db = await freshDatabase();
    const pools = [db, secondConnection(db), secondConnection(db), secondConnection(db)];
    for (let round = 0; round < 5; round++) {
      const name = `task-${round}`;
      const results = await Promise.all(
        Array.from({ length: 16 }, (_, i) =>
          acquireMaintenanceLease(pools[i % pools.length]!, { name, holder: `h${i}`, ttlMs: 60_000 }),
        ),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      const { rows } = await db.pool.query<{ holder: string }>(
        "SELECT holder FROM maintenance_leases WHERE name = $1",
        [name],
      );
      expect(rows[0]?.holder).toBe(`h${results.indexOf(true)}`);
    }
  });

  it("refuses malformed input with the field to fix", async () => {
    const db = await freshDatabase();
    await expect(acquireMaintenanceLease(db, { name: NAME, holder: "a", ttlMs: 0 })).rejects.toThrow(
      InvalidInputError,
    );
    await expect(acquireMaintenanceLease(db, { name: NAME, holder: " ", ttlMs: 1_000 })).rejects.toThrow(
      /holder/,
    );
    await expect(releaseMaintenanceLease(db, { name: "", holder: "a" })).rejects.toThrow(/name/);
  });

  it("matches the MaintenanceLease model of schema.prisma", async () => {
    const db = await freshDatabase();
    await acquireMaintenanceLease(db, { name: NAME, holder: "a", ttlMs: 60_000 });
    const lease = await db.prisma.maintenanceLease.findUniqueOrThrow({ where: { name: NAME } });
    expect(lease).toMatchObject({ name: NAME, holder: "a" });
    expect(lease.expiresAt.getTime()).toBeGreaterThan(lease.acquiredAt.getTime());
    const { rows } = await db.pool.query<{ column_name: string }>(
      `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`,
      [db.schema, "maintenance_leases"],
    );
    const snake = (field: string): string => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    expect(rows.map((r) => r.column_name).sort()).toEqual(Object.keys(lease).map(snake).sort());
  });

  it("in turn: a free lease goes to the longest waiter, not back to the holder that just released it", async () => {
    const db = await freshDatabase();
    const name = "write:lake.ns.t";
    const ask = (holder: string, waitedMs: number, reserveMs = 60_000): Promise<boolean> =>
      acquireLeaseInTurn(db, { name, holder, ttlMs: 60_000, reserveMs, waitedMs });

    expect(await ask("a", 0)).toBe(true);
    // b waits (reserved next), then c, who has waited longer, takes the reservation over.
    expect(await ask("b", 100)).toBe(false);
    expect(await ask("c", 500)).toBe(false);
    // b, younger, cannot take it back.
    expect(await ask("b", 100)).toBe(false);
    const reserved = await db.pool.query<{ next_holder: string }>(
      "SELECT next_holder FROM maintenance_leases WHERE name = $1",
      [name],
    );
    expect(reserved.rows[0]?.next_holder).toBe("c");
    // a renews while holding; then releases and asks again at once: the lease waits for c.
    expect(await ask("a", 0)).toBe(true);
    expect(await releaseMaintenanceLease(db, { name, holder: "a" })).toBe(true);
    expect(await ask("a", 0)).toBe(false);
    expect(await ask("b", 100)).toBe(false);
    expect(await ask("c", 500)).toBe(true);
    // c holds it; the reservation is cleared and goes to the longest waiter among a and b.
    expect(await ask("b", 300)).toBe(false);
    expect(await ask("a", 50)).toBe(false);
    expect(await releaseMaintenanceLease(db, { name, holder: "c" })).toBe(true);
    expect(await ask("a", 50)).toBe(false);
    expect(await ask("b", 300)).toBe(true);

    // A reservation whose waiter stopped asking lapses: then anyone may take the free lease.
    expect(await ask("d", 1_000, 200)).toBe(false);
    expect(await releaseMaintenanceLease(db, { name, holder: "b" })).toBe(true);
    expect(await ask("e", 0)).toBe(false);
    await eventually("d's reservation to lapse", async () => ((await ask("e", 0)) ? true : undefined));
  });
});
