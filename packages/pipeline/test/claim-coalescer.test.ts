import type { ClaimedFile } from "@lakeferry/db";
import { describe, expect, it } from "vitest";
import { ClaimCoalescer } from "../src/claim-coalescer.ts";

const claimed = (id: number, version: number): ClaimedFile => ({
  id,
  ingestionId: 1,
  version,
  path: `file:///f${id}`,
  size: 1,
  attempt: 1,
  previousBatchId: null,
});

describe("ClaimCoalescer", () => {
  it("sends the claims of one tick in one call, and claims arriving meanwhile in the next", async () => {
    const calls: number[][] = [];
    let release: () => void = () => {};
    const coalescer = new ClaimCoalescer(async (refs) => {
      calls.push(refs.map((ref) => ref.id));
      if (calls.length === 1) await new Promise<void>((resolve) => (release = resolve));
      // Odd ids are claimable; even ones are held elsewhere.
      return refs.filter((ref) => ref.id % 2 === 1).map((ref) => claimed(ref.id, ref.version));
    });
    const first = [1, 2, 3, 4, 5].map((id) => coalescer.claim({ id, version: 1 }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    const second = [7, 8, 9].map((id) => coalescer.claim({ id, version: 1 }));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(calls).toEqual([[1, 2, 3, 4, 5]]);
    release();
    const results = await Promise.all([...first, ...second]);
    expect(calls).toEqual([
      [1, 2, 3, 4, 5],
      [7, 8, 9],
    ]);
    expect(results.map((result) => result?.id)).toEqual([1, undefined, 3, undefined, 5, 7, undefined, 9]);
  });

  it("gives a file asked for twice to the first asker only, and passes errors to every asker", async () => {
    const coalescer = new ClaimCoalescer(async (refs) => refs.map((ref) => claimed(ref.id, ref.version)));
    const [a, b] = await Promise.all([
      coalescer.claim({ id: 1, version: 1 }),
      coalescer.claim({ id: 1, version: 1 }),
    ]);
    expect(a?.id).toBe(1);
    expect(b).toBeUndefined();

    const failing = new ClaimCoalescer(async () => {
      throw new Error("postgres is down");
    });
    const outcomes = await Promise.allSettled([
      failing.claim({ id: 1, version: 1 }),
      failing.claim({ id: 2, version: 1 }),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["rejected", "rejected"]);
    await failing.idle();
  });
});
