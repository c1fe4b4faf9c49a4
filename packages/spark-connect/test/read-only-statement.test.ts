/**
 * How `lakeferry sql` finds a statement's own EXPLAIN without Spark: comments are skipped as Spark's lexer
 * skips them, and an EXPLAIN is rebuilt with lakeferry's keyword first. (Which statements are read-only is
 * Spark's parse, tested through the CLI against a real server.)
 */
import { describe, expect, it } from "vitest";
import { explainBody, readOnlyStatementText } from "../src/read-only-statement.ts";

describe("explainBody", () => {
  it.each([
    ["EXPLAIN SELECT 1", "SELECT 1"],
    ["  explain extended SELECT 1", "EXTENDED  SELECT 1"],
    ["-- why\nEXPLAIN DROP TABLE t", "DROP TABLE t"],
    ["/* a /* nested */ comment */ EXPLAIN FORMATTED SELECT 1", "FORMATTED  SELECT 1"],
    ["EXPLAIN extended_view", "extended_view"],
  ])("finds the statement behind EXPLAIN in %j", (statement, body) => {
    expect(explainBody(statement)).toBe(body);
  });

  it.each([
    "SELECT 1",
    "DROP TABLE t -- EXPLAIN",
    // Spark's bracketed comments nest: the EXPLAIN is still inside one.
    "/* /* */ EXPLAIN */ DROP TABLE t",
    // A backslash continues a line comment onto the next line.
    "-- note \\\nEXPLAIN\nDROP TABLE t",
    "EXPLAINX SELECT 1",
  ])("finds none in %j", (statement) => {
    expect(explainBody(statement)).toBeUndefined();
  });

  it("runs an EXPLAIN as rebuilt, with lakeferry's keyword first, and anything else as given", () => {
    expect(readOnlyStatementText("/* c */ explain cost SELECT 1")).toBe("EXPLAIN COST  SELECT 1");
    expect(readOnlyStatementText("SELECT 1 -- EXPLAIN")).toBe("SELECT 1 -- EXPLAIN");
  });
});
