import { createDatabase } from "@lakeferry/db";
import { describe, expect, it, onTestFinished } from "vitest";
import { FaultProxy } from "../src/index.ts";
import { waitFor } from "./helpers.ts";

function databaseUrl(): URL {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is not set: run `eval "$(bash scripts/services.sh env)"`');
  return new URL(url);
}

describe("FaultProxy in front of the real Postgres", () => {
  it("resetAll cuts a pg client's connection, and a new client connects through the proxy afterwards", async () => {
    const url = databaseUrl();
    const proxy = new FaultProxy({ target: { host: url.hostname, port: Number(url.port || 5432) } });
    await proxy.start();
    onTestFinished(() => proxy.close());
    url.host = proxy.address;
    const db = createDatabase({ connectionString: url.toString(), maxConnections: 2 });
    onTestFinished(() => db.close());

    const client = await db.pool.connect();
    let released = false;
    onTestFinished(() => {
      if (!released) client.release(true);
    });
    const connectionErrors: (Error & { code?: string })[] = [];
    client.on("error", (error) => connectionErrors.push(error));
    expect((await client.query<{ one: number }>("SELECT 1 AS one")).rows).toEqual([{ one: 1 }]);

    expect(proxy.resetAll()).toBe(1);

    // pg reports the RST itself, then (on close) "Connection terminated unexpectedly".
    const [seen] = await waitFor(
      "the pg client to see its connection reset",
      () => connectionErrors.length > 0 && connectionErrors,
    );
    expect(seen?.code).toBe("ECONNRESET");
    await expect(client.query("SELECT 1")).rejects.toThrow();
    client.release(seen ?? true);
    released = true;

    expect((await db.pool.query<{ two: number }>("SELECT 2 AS two")).rows).toEqual([{ two: 2 }]);
    expect(proxy.stats()).toMatchObject({ accepted: 2, reset: 1, open: 1 });
  });
});
