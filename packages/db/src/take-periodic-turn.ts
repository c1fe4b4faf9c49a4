import type { Database } from "./database.ts";
import { runOperation } from "./errors.ts";
import { requireCount, requireText } from "./values.ts";

/**
 * Takes the fleet's turn at the periodic task `name` (a row in `maintenance_leases`) for `holder` if the last
 * turn, whoever took it, was taken at least `everyMs` ago (by the database clock), or never: so the task
 * runs at most once per `everyMs` across the fleet, whichever process asks first. Unlike a lease, a turn is
 * never renewed: the same holder asking again within `everyMs` is refused too. One statement.
 *
 * @returns whether `holder` took the turn.
 * @throws InvalidInputError when `name` or `holder` is empty or `everyMs` is not a positive integer.
 */
export async function takePeriodicTurn(
  db: Database,
  input: { name: string; holder: string; everyMs: number },
): Promise<boolean> {
  requireText("name", input.name);
  requireText("holder", input.holder);
  requireCount("everyMs", input.everyMs, 1);
  return runOperation("takePeriodicTurn", async () => {
    const { rowCount } = await db.pool.query(
      `INSERT INTO maintenance_leases AS l (name, holder, expires_at)
       VALUES ($1, $2, now() + $3::float8 * interval '1 millisecond')
       ON CONFLICT (name) DO UPDATE SET
         holder = EXCLUDED.holder, acquired_at = now(), expires_at = EXCLUDED.expires_at
       WHERE l.expires_at <= now()`,
      [input.name, input.holder, input.everyMs],
    );
    return rowCount === 1;
  });
}
