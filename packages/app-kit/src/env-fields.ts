import { z } from "zod";
import { InvalidInputError, type LogLevel } from "@lakeferry/core";

/**
 * Builders for environment variables shared by lakeferry's apps: an empty variable counts as unset, and
 * every message says what to set.
 */

const unset = (value: unknown): unknown =>
  typeof value === "string" && value.trim() === "" ? undefined : value;

function urlString(schemes: string[], example: string) {
  return z.string({ error: `is not set (e.g. ${example})` }).refine(
    (value) => {
      try {
        return schemes.includes(new URL(value).protocol.replace(/:$/, ""));
      } catch {
        return false;
      }
    },
    { error: `must be a ${schemes.map((s) => `${s}://`).join(" or ")} URL (e.g. ${example})` },
  );
}

/** A required URL whose scheme is one of `schemes`. */
export function urlVar(schemes: string[], example: string) {
  return z.preprocess(unset, urlString(schemes, example));
}

/** An optional URL whose scheme is one of `schemes`. */
export function optionalUrlVar(schemes: string[], example: string) {
  return z.preprocess(unset, urlString(schemes, example).optional());
}

/** A whole number of at least `min`, `fallback` when unset. */
export function intVar(fallback: number, min: number) {
  return z.preprocess(
    unset,
    z.coerce
      .number({ error: "must be a whole number" })
      .int({ error: "must be a whole number" })
      .min(min, { error: `must be at least ${min}` })
      .default(fallback),
  );
}

/** A string matching `pattern`, `fallback` when unset. */
export function nameVar(pattern: RegExp, what: string, fallback: string) {
  return z.preprocess(
    unset,
    z
      .string()
      .regex(pattern, { error: `must be ${what}` })
      .default(fallback),
  );
}

/** `true` or `false`, `fallback` when unset. */
export function boolVar(fallback: boolean) {
  return z.preprocess(
    unset,
    z
      .enum(["true", "false"], { error: "must be true or false" })
      .transform((value) => value === "true")
      .default(fallback),
  );
}

/** An optional TCP port (1–65535); unset means the feature it opens is off. */
export function optionalPortVar() {
  return z.preprocess(
    unset,
    z.coerce
      .number({ error: "must be a TCP port number (1-65535)" })
      .int({ error: "must be a TCP port number (1-65535)" })
      .min(1, { error: "must be a TCP port number (1-65535)" })
      .max(65_535, { error: "must be a TCP port number (1-65535)" })
      .optional(),
  );
}

/** An optional free-form string. */
export function optionalVar() {
  return z.preprocess(unset, z.string().optional());
}

const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

/** `LAKEFERRY_LOG_LEVEL`. */
export function logLevelVar(fallback: LogLevel) {
  return z.preprocess(
    (value) => (typeof value === "string" ? unset(value.toLowerCase()) : value),
    z.enum(LOG_LEVELS, { error: `must be one of ${LOG_LEVELS.join(", ")}` }).default(fallback),
  );
}

/** A Postgres schema name (unquoted identifier). */
export const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
/** A host name or IP address to listen on (IPv6 without brackets). */
export const LISTEN_HOST = /^[A-Za-z0-9.:%_-]{1,253}$/;
/**
 * A BullMQ key prefix, at most 64 characters. Braces enclose a Redis Cluster hash tag (`{lakeferry}`): every
 * key then hashes to one slot, which BullMQ's multi-key scripts need on a cluster.
 */
export const QUEUE_PREFIX = /^(?=.{1,64}$)(?:[A-Za-z0-9_.:-]|\{[A-Za-z0-9_.:-]+\})+$/;

/** Parses `env` with `schema`; on failure throws one InvalidInputError naming every bad variable. */
export function parseEnv<T extends z.ZodType>(
  schema: T,
  env: Record<string, string | undefined>,
): z.output<T> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => `${issue.path.join(".")} ${issue.message}`);
  throw new InvalidInputError("environment", problems.join("; "));
}
