import { outputWidth, printJson, printTable } from "../output.ts";
import type { CliServices } from "../services.ts";

/**
 * `lakeferry sql "QUERY"`: runs a query through Spark Connect (inspect tables after ingestion). Calls share
 * one Spark session (see CliServices.spark), so SET, USE and temp views carry over to later calls until the
 * session idles out on the server. Text output fits the terminal, the widest columns cut at their end,
 * unless `--full`.
 */
export async function sqlCommand(
  s: CliServices,
  query: string,
  options: { json?: boolean; full?: boolean; timeout: number },
): Promise<void> {
  // A kept session that expired, or a server that restarted, is handled by the client: it moves to a fresh
  // session and runs the query there.
  const rows = await (await s.spark()).sql(query, undefined, { deadlineMs: options.timeout * 1_000 });
  if (options.json) {
    printJson(rows);
    return;
  }
  const columns = Object.keys(rows[0] ?? {});
  printTable(rows, columns, { width: outputWidth(options.full), shrink: columns, cut: "end" });
}
