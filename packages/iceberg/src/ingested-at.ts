/** A batch's `_ingested_at` literal, to the microsecond (the precision Iceberg stores). */
export interface IngestedAt {
  /** Microseconds since the Unix epoch. */
  micros: bigint;
  /** ISO 8601 in UTC with six fraction digits, as written to the snapshot summary. */
  iso: string;
}

/**
 * The current instant with microsecond resolution. The sub-millisecond digits make the literal unique
 * per batch in practice, so a replace snapshot's rows can be told apart by it.
 */
export function ingestedAtNow(): IngestedAt {
  const micros = BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));
  return { micros, iso: formatMicros(micros) };
}

/** `2025-01-02T03:04:05.123456Z` for a count of microseconds since the epoch. */
export function formatMicros(micros: bigint): string {
  const millis = micros / 1000n;
  const fraction = micros % 1000n;
  const iso = new Date(Number(millis)).toISOString(); // …T03:04:05.123Z
  return `${iso.slice(0, -1)}${fraction.toString().padStart(3, "0")}Z`;
}

/** The inverse of {@link formatMicros}; undefined for anything else. */
export function parseMicros(iso: string): bigint | undefined {
  const match = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\.(\d{6})Z$/.exec(iso);
  if (!match) return undefined;
  const seconds = Date.parse(`${match[1]}Z`);
  if (Number.isNaN(seconds)) return undefined;
  return BigInt(seconds) * 1000n + BigInt(match[2] ?? "0");
}
