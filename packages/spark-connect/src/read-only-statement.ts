import type { SparkConnectClient } from "./client.ts";
import type { ExecutionOptions } from "./types.ts";

/** Whether a statement only reads, as Spark's own parser sees it. */
export type ReadOnlyVerdict = { readOnly: true } | { readOnly: false; reason: string };

/**
 * Plan roots (Spark's parsed logical plan, the node name without its leading `'`) of statements that only
 * read: queries, and the SHOW / DESCRIBE commands. Anything else (DDL, DML, SET, CACHE, CALL, a node a
 * newer Spark adds) is a write until this list says otherwise: refusing a read costs a `--write`, letting
 * a write through costs a table.
 */
const READ_ROOTS = new Set([
  // Queries.
  "Project",
  "Filter",
  "Aggregate",
  "Sort",
  "GlobalLimit",
  "LocalLimit",
  "Offset",
  "Tail",
  "Distinct",
  "Deduplicate",
  "Union",
  "Intersect",
  "Except",
  "Join",
  "LateralJoin",
  "Window",
  "WithWindowDefinition",
  "Generate",
  "Sample",
  "Pivot",
  "Unpivot",
  "Expand",
  "Repartition",
  "RepartitionByExpression",
  "RebalancePartitions",
  "SubqueryAlias",
  "UnresolvedHint",
  "UnresolvedRelation",
  "UnresolvedInlineTable",
  "UnresolvedTableValuedFunction",
  "UnresolvedSubqueryColumnAliases",
  "LocalRelation",
  "OneRowRelation",
  "Range",
  // Metadata commands that change nothing.
  "ShowTables",
  "ShowTableExtended",
  "ShowNamespaces",
  "ShowColumns",
  "ShowCreateTable",
  "ShowTableProperties",
  "ShowPartitions",
  "ShowFunctions",
  "ShowViews",
  "ShowCatalogsCommand",
  "ShowCurrentNamespaceCommand",
  "DescribeRelation",
  "DescribeColumn",
  "DescribeNamespace",
  "DescribeFunction",
  "DescribeQueryCommand",
]);

/**
 * Functions that call any static Java method on the server (`reflect('java.lang.System', 'exit', …)`): a
 * SELECT that names one can do anything the Spark server can.
 */
const SERVER_CODE_FUNCTIONS = /'(reflect|java_method|try_reflect)\(/i;

const EXPLAIN_MODES = new Set(["EXTENDED", "CODEGEN", "COST", "FORMATTED", "LOGICAL"]);

/**
 * Decides whether `statement` only reads, by asking Spark to parse it: `EXPLAIN EXTENDED <statement>`
 * parses without running anything (EXPLAIN never executes its statement, commands included) and shows the
 * parsed plan, whose root names the kind of statement. Spark parses one statement per call, so
 * `SELECT 1; DROP TABLE t` fails to parse here as it would when run, and a comment cannot hide a keyword
 * from Spark's own lexer. A statement that is itself an EXPLAIN is read-only by nature: it is run as
 * {@link readOnlyStatementText} rebuilds it, with EXPLAIN first, so that it can only be an EXPLAIN.
 * @throws SparkAnalysisError when Spark cannot parse the statement (its syntax error).
 */
export async function readOnlyVerdict(
  spark: SparkConnectClient,
  statement: string,
  options?: ExecutionOptions,
): Promise<ReadOnlyVerdict> {
  if (explainBody(statement) !== undefined) return { readOnly: true };
  const rows = await spark.sql(`EXPLAIN EXTENDED ${statement}`, undefined, options);
  const plan = rows[0]?.plan;
  if (typeof plan !== "string") return { readOnly: false, reason: "Spark explained it without a plan" };
  const parsed = plan.split(/^== Analyzed Logical Plan ==$/m)[0] ?? "";
  const root = statementRoot(parsed);
  if (root === undefined) return { readOnly: false, reason: "Spark's plan of it could not be read" };
  if (!READ_ROOTS.has(root)) return { readOnly: false, reason: `Spark parses it as ${root}` };
  const named = SERVER_CODE_FUNCTIONS.exec(parsed);
  if (named) return { readOnly: false, reason: `it calls ${named[1]}, which runs Java code on the server` };
  return { readOnly: true };
}

/**
 * The text to run for a statement judged read-only: an EXPLAIN is rebuilt as `EXPLAIN <rest>`, the keyword
 * lakeferry's own, so that a comment Spark reads differently from {@link explainBody} cannot turn it into
 * something else; any other statement is run as given.
 */
export function readOnlyStatementText(statement: string): string {
  const body = explainBody(statement);
  return body === undefined ? statement : `EXPLAIN ${body}`;
}

/**
 * The node name at the root of a parsed plan's text, looking through a `CTE` (WITH …) to its main query:
 * the definitions are `:`-prefixed lines, the body the child drawn with `+-` at the first level.
 */
function statementRoot(parsed: string): string | undefined {
  const lines = parsed.split("\n").filter((line) => line.trim() !== "" && !line.startsWith("=="));
  let index = 0;
  for (;;) {
    const line = lines[index];
    if (line === undefined) return undefined;
    const name = /^'?([A-Za-z][A-Za-z0-9]*)/.exec(line)?.[1];
    if (name !== "CTE" && name !== "UnresolvedWith" && name !== "WithCTE") return name;
    // The main query of a WITH is its last first-level child.
    const depth = line.search(/\S/);
    const body = lines.findLastIndex((l, i) => i > index && l.slice(depth).startsWith("+- "));
    if (body < 0) return undefined;
    lines[body] = (lines[body] ?? "").slice(depth + 3);
    index = body;
  }
}

/**
 * What follows the leading EXPLAIN [mode] of a statement, or undefined when it does not start with EXPLAIN.
 * Comments before the keyword are skipped as Spark's lexer skips them: `--` to the end of the line (a
 * backslash before the newline continues it), and bracketed comments, which nest.
 */
export function explainBody(statement: string): string | undefined {
  let rest = skipComments(statement);
  const keyword = /^EXPLAIN\b/i.exec(rest);
  if (!keyword) return undefined;
  rest = skipComments(rest.slice(keyword[0].length));
  const mode = /^[A-Za-z]+\b/.exec(rest)?.[0];
  if (mode !== undefined && EXPLAIN_MODES.has(mode.toUpperCase())) {
    return `${mode.toUpperCase()} ${rest.slice(mode.length)}`;
  }
  return rest;
}

function skipComments(text: string): string {
  let i = 0;
  for (;;) {
    while (i < text.length && /\s/.test(text[i] ?? "")) i++;
    if (text.startsWith("--", i)) {
      i += 2;
      while (i < text.length && text[i] !== "\n" && text[i] !== "\r") {
        i += text[i] === "\\" && text[i + 1] === "\n" ? 2 : 1;
      }
      continue;
    }
    if (text.startsWith("/*", i)) {
      let depth = 0;
      while (i < text.length) {
        if (text.startsWith("/*", i)) {
          depth++;
          i += 2;
        } else if (text.startsWith("*/", i)) {
          depth--;
          i += 2;
          if (depth === 0) break;
        } else i++;
      }
      continue;
    }
    return text.slice(i);
  }
}
