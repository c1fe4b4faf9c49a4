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
