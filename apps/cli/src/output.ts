/** Command output: JSON for machines (`--json`), aligned text tables for people. Always stdout. */

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

function cell(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean")
    return String(value);
  return toJson(value).replace(/\s*\n\s*/g, " ");
}

/** Rows as a text table; `columns` picks and orders them (default: every key of the first row). */
export function printTable(rows: Record<string, unknown>[], columns?: string[]): void {
  const keys = columns ?? Object.keys(rows[0] ?? {});
  if (keys.length === 0) {
    printLine("(no rows)");
    return;
  }
  const cells = rows.map((row) => keys.map((key) => cell(row[key])));
  const widths = keys.map((key, i) => Math.max(key.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (values: string[]): string =>
    values
      .map((v, i) => v.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  printLine(line(keys));
  printLine(line(widths.map((w) => "-".repeat(w))));
  for (const row of cells) printLine(line(row));
  if (rows.length === 0) printLine("(no rows)");
}
