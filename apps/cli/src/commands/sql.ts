import { SparkSessionChangedError } from "@lakeferry/spark-connect";
import { printJson, printTable } from "../output.ts";
import type { CliServices } from "../services.ts";

/**
 * `lakeferry sql "QUERY"`: runs a query through Spark Connect (inspect tables after ingestion). Calls share
 * one Spark session (see CliServices.spark), so SET, USE and temp views carry over to later calls until the
 * session idles out on the server.
 */
export async function sqlCommand(
  s: CliServices,
  query: string,
  options: { json?: boolean; timeout: number },
): Promise<void> {
  const spark = await s.spark();
  const run = () => spark.sql(query, undefined, { deadlineMs: options.timeout * 1_000 });
  const rows = await run().catch((error: unknown) => {
    // The kept session expired, was released, or the server restarted: the server refused it before running
    // anything, and the client has moved to a fresh session. Once is enough.
    if (error instanceof SparkSessionChangedError) return run();
    throw error;
  });
  if (options.json) printJson(rows);
  else printTable(rows);
}
