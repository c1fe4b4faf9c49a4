import { errorMessage, InvalidInputError } from "@lakeferry/core";
import { outputWidth, printJson, printTable } from "../output.ts";
import type { CliServices } from "../services.ts";

/**
 * `lakeferry sql "QUERY"`: runs a query through Spark Connect (inspect tables after ingestion). Calls share
 * one Spark session (see CliServices.spark), so SET, USE and temp views carry over to later calls until the
 * session idles out on the server. Text output fits the terminal, the widest columns cut at their end,
 * unless `--full`.
 *
 * Read-only unless `--write`: Spark parses the statement first (EXPLAIN, which runs nothing) and only a
 * query, SHOW, DESCRIBE or EXPLAIN is run without the flag; anything else is refused before it runs.
 */
export async function sqlCommand(
  s: CliServices,
  query: string,
  options: { json?: boolean; full?: boolean; write?: boolean; timeout: number },
): Promise<void> {
  const { readOnlyVerdict, readOnlyStatementText, SparkAnalysisError } =
    await import("@lakeferry/spark-connect");
  const spark = await s.spark();
  const deadline = { deadlineMs: options.timeout * 1_000 };
  let statement = query;
  if (!options.write) {
    const verdict = await readOnlyVerdict(spark, query, deadline).catch((error: unknown) => {
      if (!(error instanceof SparkAnalysisError) || !/PARSE_SYNTAX_ERROR/.test(error.message)) throw error;
      // Spark's excerpt shows the statement behind lakeferry's own EXPLAIN: positions are off by its length.
      throw new InvalidInputError(
        "sql",
        `Spark cannot parse the query as one statement: ${errorMessage(error).replace(/EXPLAIN EXTENDED /g, "")}`,
      );
    });
    if (!verdict.readOnly) {
      throw new InvalidInputError(
        "sql",
        `refused to run the statement: ${verdict.reason}, and lakeferry sql only reads by default; add --write to run statements that change tables, namespaces or session settings`,
      );
    }
    statement = readOnlyStatementText(query);
  }
  // A kept session that expired, or a server that restarted, is handled by the client: it moves to a fresh
  // session and runs the query there.
  const rows = await spark.sql(statement, undefined, deadline);
  if (options.json) {
    printJson(rows);
    return;
  }
  const columns = Object.keys(rows[0] ?? {});
  printTable(rows, columns, { width: outputWidth(options.full), shrink: columns, cut: "end" });
}
