/** The text helpers that keep human output inside the terminal's width. */
import { describe, expect, it } from "vitest";
import {
  clipEnd,
  clipStart,
  errorText,
  firstLine,
  fitColumnWidths,
  sourceRelative,
  wrapText,
} from "../src/output.ts";

const JAVA_ERROR =
  "\n  [FAILED_READ_FILE.NO_HINT] Encountered error\twhile reading file:///x/a.json.\n\tat org.Foo.bar(Foo.java:1)\nCaused by: oops";

describe("output helpers", () => {
  it("cuts at the end or at the start, marking the cut", () => {
    expect(clipEnd("abcdef", 6)).toBe("abcdef");
    expect(clipEnd("abcdef", 4)).toBe("abc…");
    expect(clipStart("s3://bucket/2024/01/file.json", 12)).toBe("…1/file.json");
    expect(clipEnd("abc", Infinity)).toBe("abc");
  });

  it("shows an error by its first line with text, whitespace collapsed; --full keeps it whole", () => {
    expect(firstLine(JAVA_ERROR)).toBe(
      "[FAILED_READ_FILE.NO_HINT] Encountered error while reading file:///x/a.json.",
    );
    expect(errorText("CANNOT_PARSE_JSON_FIELD", JAVA_ERROR)).toBe(
      "CANNOT_PARSE_JSON_FIELD: [FAILED_READ_FILE.NO_HINT] Encountered error while reading file:///x/a.json.",
    );
    expect(errorText("T", JAVA_ERROR, true)).toBe(`T: ${JAVA_ERROR.trimEnd()}`);
    expect(errorText(null, null)).toBe("");
  });

  it("wraps at spaces under a hanging prefix, never breaking a command in backticks", () => {
    const lines = wrapText(
      "fix the file at the source, then `lakeferry retry orders --failed` (or leave it FAILED)",
      40,
      "  do: ",
      "      ",
    );
    expect(lines).toEqual([
      "  do: fix the file at the source, then",
      "      `lakeferry retry orders --failed`",
      "      (or leave it FAILED)",
    ]);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(40);
  });

  it("shows a file relative to its ingestion's source, else whole", () => {
    expect(sourceRelative("s3://b/p/x/a.json", "s3://b/p/")).toBe("x/a.json");
    expect(sourceRelative("s3://b/q/a.json", "s3://b/p/")).toBe("s3://b/q/a.json");
  });

  it("narrows the widest shrinkable columns first, down to their floors, only when the table is too wide", () => {
    const lineWidth = (ws: number[]): number => ws.reduce((sum, w) => sum + w + 2, -2);
    // name, source, format, table: 12 + 60 + 6 + 30 + 3 × 2 = 114 columns.
    const natural = [12, 60, 6, 30];
    expect(fitColumnWidths(natural, new Set([1, 3]), [16, 16, 16, 16], 200)).toEqual(natural);
    // 14 too many: the source alone gives them up (the table is narrower than the cap).
    expect(fitColumnWidths(natural, new Set([1, 3]), [16, 16, 16, 16], 100)).toEqual([12, 46, 6, 30]);
    // 54 too many: source and table meet at one cap.
    const tight = fitColumnWidths(natural, new Set([1, 3]), [16, 16, 16, 16], 60);
    expect(tight).toEqual([12, 18, 6, 18]);
    expect(lineWidth(tight)).toBeLessThanOrEqual(60);
    // Not below their floors, whatever the width: the line is then cut by the caller.
    expect(fitColumnWidths(natural, new Set([1, 3]), [16, 16, 16, 16], 20)).toEqual([12, 16, 6, 16]);
  });
});
