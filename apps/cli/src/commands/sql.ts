import { printJson, printTable } from "../output.ts";
import type { CliServices } from "../services.ts";

/** `lakeferry sql "QUERY"`: runs a query through Spark Connect (inspect tables after ingestion). */
export async function sqlCommand(
  s: CliServices,
  query: string,
  options: { json?: boolean; timeout: number },
): Promise<void> {
  const rows = await (await s.spark()).sql(query, undefined, { deadlineMs: options.timeout * 1_000 });
  if (options.json) printJson(rows);
  else printTable(rows);
}
