/**
 * Command output: JSON for machines (`--json`), text for people, always on stdout. Text fits the terminal
 * (100 columns when stdout is not one) unless `--full`: long values are cut, errors shown by their first
 * line.
 */

/** Columns text output fits when stdout is not a terminal (a pipe, a file, a CI log). */
const PIPE_COLUMNS = 100;

/** A JSON value of anything the packages return: bigints as numbers when exact (else strings), dates ISO. */
export function toJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v: unknown) => {
      if (typeof v === "bigint") {
        return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
          ? Number(v)
          : v.toString();
      }
      if (v instanceof Map) return Object.fromEntries(v as Map<string, unknown>) as unknown;
      if (v instanceof Set) return [...(v as Set<unknown>)];
      if (v instanceof Uint8Array) return Buffer.from(v).toString("base64");
      return v;
    },
    2,
  );
}

export function printJson(value: unknown): void {
  process.stdout.write(`${toJson(value)}\n`);
}

export function printLine(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** Columns text output may take: the terminal's width, else {@link PIPE_COLUMNS}; no limit with `full`. */
export function outputWidth(full?: boolean, stream: NodeJS.WriteStream = process.stdout): number {
  if (full) return Infinity;
  return stream.isTTY && stream.columns > 0 ? stream.columns : PIPE_COLUMNS;
}

/** `text` cut to `width` columns, ending in … when cut. */
export function clipEnd(text: string, width: number): string {
  return text.length <= width ? text : `${text.slice(0, Math.max(0, width - 1))}…`;
}

/** `text` cut to `width` columns at its start, starting with … when cut (a path keeps its file name). */
export function clipStart(text: string, width: number): string {
  return text.length <= width ? text : `…${text.slice(text.length - Math.max(0, width - 1))}`;
}

/** Words, a command in backticks counting as one (with what sticks to it): it is not broken. */
const WORDS = /(?:`[^`]*`|\S)+/g;

/**
 * `text` broken at spaces into lines of at most `width` columns, the first line starting with `first`, the
 * others with `rest` (as wide as `first`, to hang under it). A word too long for a line is cut.
 */
export function wrapText(text: string, width: number, first: string, rest: string): string[] {
  const lines: string[] = [];
  let line = first;
  let words = 0;
  for (const word of text.match(WORDS) ?? []) {
    if (words > 0 && line.length + 1 + word.length > width) {
      lines.push(line);
      line = rest;
      words = 0;
    }
    line += words === 0 ? word : ` ${word}`;
    words++;
  }
  lines.push(line);
  return lines.map((l) => clipEnd(l, width));
}

/**
 * The first line of `text` that has any, whitespace collapsed: a Java error's class and message without
 * its stack trace and causes (tabs would break the column count).
 */
export function firstLine(text: string): string {
  const line = text.split("\n").find((l) => l.trim() !== "") ?? "";
  return line.replace(/\s+/g, " ").trim();
}

/** A failure as `TYPE: message`: the message's first line, or all of it with `full`. "" when none. */
export function errorText(type: string | null, message: string | null, full?: boolean): string {
  if (type === null && message === null) return "";
  const text = full ? (message ?? "").trimEnd() : firstLine(message ?? "");
  return type === null ? text : `${type}: ${text}`;
}

/** A tracked file's path relative to its ingestion's source (what `history` takes), else the whole URI. */
export function sourceRelative(path: string, sourceUri: string): string {
  return path.startsWith(sourceUri) && path.length > sourceUri.length ? path.slice(sourceUri.length) : path;
}

function cell(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean")
    return String(value);
  return toJson(value).replace(/\s*\n\s*/g, " ");
}

/**
 * Fields as `key: value` lines with the keys aligned, empty values (null, undefined, "") left out. Each
 * line is cut to `width`; a value's further lines (a full error) continue under its first.
 */
export function printRecord(
  fields: Record<string, unknown>,
  layout: { width: number; indent?: string },
): void {
  const entries = Object.entries(fields)
    .map(([key, value]) => [key, cell(value)] as const)
    .filter(([, value]) => value !== "");
  const indent = layout.indent ?? "";
  const keyWidth = Math.max(0, ...entries.map(([key]) => key.length)) + 2;
  for (const [key, value] of entries) {
    const [first, ...rest] = value.split("\n");
    printLine(clipEnd(`${indent}${`${key}:`.padEnd(keyWidth)}${first ?? ""}`, layout.width));
    for (const line of rest) printLine(clipEnd(`${indent}${" ".repeat(keyWidth)}${line}`, layout.width));
  }
}

/** How {@link printTable} fits a table to the screen. */
export interface TableLayout {
  /** Columns a line may take (Infinity: no limit); every line is cut to it. Default: no limit. */
  width?: number;
  /**
   * The columns narrowed when the table is too wide, the widest first: to no less than {@link MIN_SHRUNK}
   * (or their heading) when that is enough, else to no less than {@link MIN_TIGHT}; a line still too wide
   * is cut at its end. Default: none.
   */
  shrink?: readonly string[];
  /**
   * Where a narrowed column's values are cut: at their `start` (a path keeps its file name, a table its
   * name; the default) or their `end` (values read from the left, such as a query's).
   */
  cut?: "start" | "end";
  /**
   * A field printed under its row, indented, instead of in a column (when not empty): an error, too long
   * for a cell. Its further lines (a full error) follow, indented alike.
   */
  below?: string;
}

/** Narrowest a shrunk column gets while the table can fit so: enough to tell a file name. */
const MIN_SHRUNK = 16;
/** Narrowest a shrunk column gets when the table is too wide for {@link MIN_SHRUNK} (or its heading). */
const MIN_TIGHT = 8;

/** Columns a table line takes: its columns' widths and two spaces between each two. */
function lineWidth(widths: readonly number[]): number {
  return widths.reduce((sum, w) => sum + w + 2, -2);
}

/**
 * Column widths that fit `width` (two spaces between columns), by lowering one cap on the `shrinkable`
 * columns: every shrinkable column wider than the cap is narrowed to it (not below its `floor`), so the
 * widest give way first and the narrow ones keep their values whole. Unchanged when the table fits.
 */
export function fitColumnWidths(
  widths: readonly number[],
  shrinkable: ReadonlySet<number>,
  floors: readonly number[],
  width: number,
): number[] {
  const capped = (cap: number): number[] =>
    widths.map((w, i) => (shrinkable.has(i) ? Math.min(w, Math.max(cap, floors[i] ?? 0)) : w));
  if (lineWidth(widths) <= width) return [...widths];
  // The widest cap that fits (0 when even the floors do not: the line is then cut).
  let low = 0;
  let high = Math.max(0, ...widths);
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (lineWidth(capped(mid)) <= width) low = mid;
    else high = mid - 1;
  }
  return capped(low);
}

/** Rows as a text table; `columns` picks and orders them (default: every key of the first row). */
export function printTable(
  rows: Record<string, unknown>[],
  columns?: string[],
  layout: TableLayout = {},
): void {
  const width = layout.width ?? Infinity;
  const keys = columns ?? Object.keys(rows[0] ?? {});
  if (keys.length === 0) {
    printLine("(no rows)");
    return;
  }
  const cells = rows.map((row) => keys.map((key) => cell(row[key])));
  const natural = keys.map((key, i) => Math.max(key.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const shrinkable = new Set(keys.flatMap((key, i) => (layout.shrink?.includes(key) ? [i] : [])));
  const roomy = fitColumnWidths(
    natural,
    shrinkable,
    keys.map((key) => Math.max(MIN_SHRUNK, key.length)),
    width,
  );
  const widths =
    lineWidth(roomy) <= width
      ? roomy
      : fitColumnWidths(
          natural,
          shrinkable,
          keys.map((key) => Math.max(MIN_TIGHT, key.length)),
          width,
        );
  const clip = layout.cut === "end" ? clipEnd : clipStart;
  for (const row of cells) {
    widths.forEach((w, i) => {
      if (w < (natural[i] ?? 0)) row[i] = clip(row[i] ?? "", w);
    });
  }
  const line = (values: string[]): string =>
    clipEnd(
      values
        .map((v, i) => v.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
      width,
    );
  printLine(line(keys));
  printLine(line(widths.map((w) => "-".repeat(w))));
  cells.forEach((row, i) => {
    printLine(line(row));
    const below = layout.below === undefined ? "" : cell(rows[i]?.[layout.below]);
    for (const text of below === "" ? [] : below.split("\n")) printLine(clipEnd(`    ${text}`, width));
  });
  if (rows.length === 0) printLine("(no rows)");
}
