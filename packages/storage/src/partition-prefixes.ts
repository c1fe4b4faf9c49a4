import { InvalidInputError } from "@lakeferry/core";

/** A date-partitioned layout below a source prefix and how far back to look. */
export interface PartitionTemplate {
  /**
   * The prefix of one partition, with UTC date fields: `{yyyy}` year, `{MM}` month, `{dd}` day,
   * `{HH}` hour (all zero-padded). E.g. `"year={yyyy}/month={MM}/day={dd}/"` or `"{yyyy}/{MM}/{dd}/{HH}/"`.
   * The finest field present sets the step (hourly, daily, monthly or yearly partitions).
   */
  template: string;
  /** The window ending now: partitions that overlap the last `days` days plus `hours` hours. */
  lookback: { days?: number; hours?: number };
}

type Unit = "yyyy" | "MM" | "dd" | "HH";
const FIELD = /\{([^{}]*)\}/g;
const UNITS: Unit[] = ["yyyy", "MM", "dd", "HH"];
const HOUR_MS = 3_600_000;
/** More partitions than this is almost certainly a mistaken lookback or template. */
const MAX_PREFIXES = 100_000;

function invalid(message: string): never {
  throw new InvalidInputError("template", message);
}

function floorTo(unit: Unit, time: Date): Date {
  const y = time.getUTCFullYear();
  const m = time.getUTCMonth();
  switch (unit) {
    case "yyyy":
      return new Date(Date.UTC(y, 0, 1));
    case "MM":
      return new Date(Date.UTC(y, m, 1));
    case "dd":
      return new Date(Date.UTC(y, m, time.getUTCDate()));
    case "HH":
      return new Date(Date.UTC(y, m, time.getUTCDate(), time.getUTCHours()));
  }
}

function step(unit: Unit, time: Date): Date {
  const next = new Date(time);
  switch (unit) {
    case "yyyy":
      next.setUTCFullYear(next.getUTCFullYear() + 1);
      break;
    case "MM":
      next.setUTCMonth(next.getUTCMonth() + 1);
      break;
    case "dd":
      next.setUTCDate(next.getUTCDate() + 1);
      break;
    case "HH":
      next.setUTCHours(next.getUTCHours() + 1);
      break;
  }
  return next;
}

function pad(value: number, width: number): string {
  return String(value).padStart(width, "0");
}

function format(template: string, time: Date): string {
  return template.replace(FIELD, (_field, name: string) => {
    switch (name as Unit) {
      case "yyyy":
        return pad(time.getUTCFullYear(), 4);
      case "MM":
        return pad(time.getUTCMonth() + 1, 2);
      case "dd":
        return pad(time.getUTCDate(), 2);
      case "HH":
        return pad(time.getUTCHours(), 2);
    }
  });
}

/**
 * The partition prefixes of a template inside its lookback window ending at `now`, oldest first and
 * newest last, in UTC. A partition is inside when any part of it overlaps the window, so the current
 * (still filling) partition is always included.
 * @throws InvalidInputError (field `template`) for an unknown field, a template without fields, or a
 *   negative or non-finite lookback.
 */
export function partitionPrefixes(template: PartitionTemplate, now: Date): string[] {
  const fields = [...template.template.matchAll(FIELD)].map((match) => match[1] ?? "");
  if (fields.length === 0) invalid(`"${template.template}" has no date field ({yyyy}, {MM}, {dd}, {HH})`);
  for (const field of fields) {
    if (!UNITS.includes(field as Unit)) {
      invalid(`unknown field "{${field}}" in "${template.template}"; use {yyyy}, {MM}, {dd} or {HH}`);
    }
  }
  const days = template.lookback.days ?? 0;
  const hours = template.lookback.hours ?? 0;
  for (const [name, value] of [
    ["days", days],
    ["hours", hours],
  ] as const) {
    if (!Number.isFinite(value) || value < 0) invalid(`lookback.${name} must be a number >= 0, got ${value}`);
  }
  if (Number.isNaN(now.getTime())) throw new InvalidInputError("now", "an invalid date");

  const finest = UNITS.filter((unit) => fields.includes(unit)).at(-1) as Unit;
  const start = new Date(now.getTime() - (days * 24 + hours) * HOUR_MS);
  if (Number.isNaN(start.getTime()))
    invalid(`lookback of ${days} days and ${hours} hours reaches past any date`);
  const prefixes: string[] = [];
  const seen = new Set<string>();
  let steps = 0;
  for (let time = floorTo(finest, start); time.getTime() <= now.getTime(); time = step(finest, time)) {
    if (++steps > MAX_PREFIXES) {
      invalid(`the lookback spans more than ${MAX_PREFIXES} partitions of "${template.template}"`);
    }
    const prefix = format(template.template, time);
    // A template without a coarser field ({yyyy}/{dd}) repeats prefixes; each is listed once.
    if (!seen.has(prefix)) {
      seen.add(prefix);
      prefixes.push(prefix);
    }
  }
  return prefixes;
}
