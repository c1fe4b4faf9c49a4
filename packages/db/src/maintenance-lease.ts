import { InvalidInputError } from "@lakeferry/core";
import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import { requireCount, requireText } from "./values.ts";

/**
 * Takes or renews the lease on the maintenance task `name` for `holder`, for `ttlMs` from now: it succeeds
 * when nobody holds it, when the last holder's lease has expired, or when `holder` holds it already (a
 * renewal). Expiry is judged by the database clock, so the holders' clocks do not matter. One statement,
 * no session state: it works behind PgBouncer in transaction mode.
 *
 * @returns whether `holder` holds the lease now.
 * @throws InvalidInputError when `name` or `holder` is empty or `ttlMs` is not a positive integer.
 */
export async function acquireMaintenanceLease(
  db: Database,
  input: { name: string; holder: string; ttlMs: number },
): Promise<boolean> {
  requireText("name", input.name);
  requireText("holder", input.holder);
  requireCount("ttlMs", input.ttlMs, 1);
  return runOperation("acquireMaintenanceLease", async () => {
    const { rowCount } = await db.pool.query(
      `INSERT INTO maintenance_leases AS l (name, holder, expires_at)
       VALUES ($1, $2, now() + $3::float8 * interval '1 millisecond')
       ON CONFLICT (name) DO UPDATE SET
         holder = EXCLUDED.holder,
         expires_at = EXCLUDED.expires_at,
         acquired_at = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now()
                            THEN l.acquired_at ELSE now() END
       WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()`,
      [input.name, input.holder, input.ttlMs],
    );
    return rowCount === 1;
  });
}

/**
 * Gives up `holder`'s lease on `name` at once, so another process may take it without waiting for it to
 * expire. The row stays, naming its last holder.
 *
 * @returns whether `holder` held the lease (false when it had expired and been taken, or was never held).
 */
export async function releaseMaintenanceLease(
  db: Database,
  input: { name: string; holder: string },
): Promise<boolean> {
  requireText("name", input.name);
  requireText("holder", input.holder);
  return runOperation("releaseMaintenanceLease", async () => {
    const { rowCount } = await db.pool.query(
      `UPDATE maintenance_leases SET expires_at = now()
       WHERE name = $1 AND holder = $2 AND expires_at > now()`,
      [input.name, input.holder],
    );
    return rowCount === 1;
  });
}

/**
 * Takes or renews the lease `name` for `holder`, for `ttlMs` from now, waiting in turn: when the lease is
 * held, `holder` is reserved as its next holder if nobody is, or if the one reserved has waited less long
 * than `holder` (`waitedMs`, turned into a moment by the database clock, so the waiters' clocks do not
 * matter), or let the reservation lapse (it lasts `reserveMs` and is renewed by asking again). A lease that is free goes only to its reserved holder while the reservation lasts, so a
 * holder that releases and asks again at once cannot take it back from a waiter. One statement.
 *
 * @returns whether `holder` holds the lease now.
 * @throws InvalidInputError for an empty name or holder, or durations that are not positive integers.
 */
export async function acquireLeaseInTurn(
  db: Database,
  input: { name: string; holder: string; ttlMs: number; reserveMs: number; waitedMs: number },
): Promise<boolean> {
  requireText("name", input.name);
  requireText("holder", input.holder);
  requireCount("ttlMs", input.ttlMs, 1);
  requireCount("reserveMs", input.reserveMs, 1);
  if (typeof input.waitedMs !== "number" || !(input.waitedMs >= 0)) {
    throw new InvalidInputError("waitedMs", "must be a number of milliseconds ≥ 0");
  }
  return runOperation("acquireLeaseInTurn", async () => {
    const { rows } = await db.pool.query<{ acquired: boolean }>(
      `WITH taken AS (
         INSERT INTO maintenance_leases AS l (name, holder, expires_at)
         VALUES ($1, $2, now() + $3::float8 * interval '1 millisecond')
         ON CONFLICT (name) DO UPDATE SET
           holder = EXCLUDED.holder,
           expires_at = EXCLUDED.expires_at,
           acquired_at = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now()
                              THEN l.acquired_at ELSE now() END,
           next_holder = CASE WHEN l.next_holder = EXCLUDED.holder THEN NULL ELSE l.next_holder END,
           next_since = CASE WHEN l.next_holder = EXCLUDED.holder THEN NULL ELSE l.next_since END,
           next_until = CASE WHEN l.next_holder = EXCLUDED.holder THEN NULL ELSE l.next_until END
         WHERE (l.holder = EXCLUDED.holder AND l.expires_at > now())
            OR (l.expires_at <= now()
                AND (l.next_holder IS NULL OR l.next_holder = EXCLUDED.holder OR l.next_until <= now()))
         RETURNING 1
       ), queued AS (
         UPDATE maintenance_leases SET
           next_holder = $2,
           next_since = CASE WHEN next_holder = $2 THEN next_since
                             ELSE now() - $5::float8 * interval '1 millisecond' END,
           next_until = now() + $4::float8 * interval '1 millisecond'
         WHERE name = $1 AND NOT EXISTS (SELECT 1 FROM taken)
           AND (next_holder IS NULL OR next_holder = $2 OR next_until <= now()
                OR next_since > now() - $5::float8 * interval '1 millisecond')
         RETURNING 1
       )
       SELECT EXISTS (SELECT 1 FROM taken) AS acquired, (SELECT count(*) FROM queued) AS queued`,
      [input.name, input.holder, input.ttlMs, input.reserveMs, input.waitedMs],
    );
    return rows[0]?.acquired === true;
  });
}
