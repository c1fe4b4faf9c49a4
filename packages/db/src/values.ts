import { InvalidInputError } from "@lakeferry/core";

/** A bigint column read through pg (decimal string) or Prisma (bigint), as a JS number. */
export function toNumber(value: bigint | string | number): number {
  return typeof value === "number" ? value : Number(value);
}

export function toNumberOrNull(value: bigint | string | number | null | undefined): number | null {
  return value === null || value === undefined ? null : toNumber(value);
}

/** A 64-bit id (Iceberg snapshot) as its exact decimal string. */
export function toDecimalOrNull(value: bigint | string | number | null | undefined): string | null {
  return value === null || value === undefined ? null : String(value);
}

export function requireId(field: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new InvalidInputError(field, `must be a positive integer id, got ${String(value)}`);
  }
  return value;
}

export function requireCount(field: string, value: number, minimum = 0): number {
  if (!Number.isSafeInteger(value) || value < minimum) {
    throw new InvalidInputError(field, `must be an integer ≥ ${minimum}, got ${String(value)}`);
  }
  return value;
}

export function requireText(field: string, value: string): string {
  if (typeof value !== "string" || value.trim() === "") {
    throw new InvalidInputError(field, "must be a non-empty string");
  }
  return value;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function requireUuid(field: string, value: string): string {
  if (!UUID.test(value)) throw new InvalidInputError(field, `must be a UUID, got "${value}"`);
  return value;
}

const INT64 = /^-?\d{1,19}$/;

/** An Iceberg snapshot id given as a decimal string. */
export function requireInt64(field: string, value: string): string {
  if (!INT64.test(value)) throw new InvalidInputError(field, `must be a 64-bit integer as a decimal string`);
  const big = BigInt(value);
  if (big > 9223372036854775807n || big < -9223372036854775808n) {
    throw new InvalidInputError(field, "is out of the 64-bit integer range");
  }
  return value;
}

export function requireOneOf<T extends string>(field: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new InvalidInputError(field, `must be one of ${allowed.join(", ")}, got "${value}"`);
  }
  return value as T;
}

/** Version/id pairs, checked and without duplicate ids. */
export function requireRefs(
  field: string,
  refs: { id: number; version: number }[],
): { ids: number[]; versions: number[] } {
  const seen = new Set<number>();
  const ids: number[] = [];
  const versions: number[] = [];
  refs.forEach((ref, i) => {
    requireId(`${field}[${i}].id`, ref.id);
    requireCount(`${field}[${i}].version`, ref.version, 1);
    if (seen.has(ref.id)) throw new InvalidInputError(`${field}[${i}].id`, `file ${ref.id} is listed twice`);
    seen.add(ref.id);
    ids.push(ref.id);
    versions.push(ref.version);
  });
  return { ids, versions };
}
